"""The list's reminders, its expired referrals and the export, in headless Chromium (Debian's, through
Playwright) on the inbox served over HTTP (the real CSP, cookies and scripts), against the router's
lifecycle and read side in process, on a clock the test sets (Friday 13 March 2026, 10:00 in Paris):

- the list shows « Sans réponse depuis 11 jours » on a referral received eleven days before and not
  answered, « Rappel : échéance demain » on one to acknowledge by Monday, and the referral the bus
  expired in « Orientations expirées » with its dates;
- « Exporter (CSV) » with the organisation's encryption key loaded fetches the server's CSV, which holds
  no contact, and downloads (a Blob through an object URL and `<a download>`, under the CSP) the same
  lines with the contact columns filled, opened in the browser, for the referrals received, and empty
  for those sent; a field a spreadsheet would run is written as text;
- without the key the page says why and the file's contact columns are empty;
- on the decline form, « Autre » makes the comment required.

Screenshots: `test-artifacts/inbox/25-...`, `26-...`, `27-...` with CEPBUS_TEST_ARTIFACTS set."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization

from cepbus.contract.contact import ContactPreference, ReferralContact
from cepbus.contract.models import ReferralRequested
from cepbus.trust.development import dev_encryption_key
from services.inbox import export
from tests.support.browser import artifacts_dir, chromium, require_chromium
from tests.support.factories import MONDAY
from tests.unit.inbox.harness import CONTACT, PARTNER, REQUESTER, Harness, log_in, take_step
from tests.unit.inbox.test_inbox_contact import leaked

FRIDAY = datetime(2026, 3, 13, 10, tzinfo=ZoneInfo("Europe/Paris"))
#: A contact whose fields a spreadsheet would misread: a `;` and quotes, a formula, a number sign.
TRICKY = ReferralContact(
    first_name="Zoé",
    last_name='Lefèvre; dite "Zaza"',
    phone="+262 692 00 11 22",
    email=None,
    contact_preference=ContactPreference.EMAIL,
    availability="=1+2 le matin",
    situation="hors export",
    referent_name="@référente ML",
    referent_contact="ml-sud@example.org",
)
EXPIRING = CONTACT.model_copy(update={"first_name": "Ysé", "last_name": "Marchal", "email": None})
CONTACT_HEADERS = [header for _, header in export.CONTACT_COLUMNS]


def pem_file(folder: Path) -> Path:
    path = folder / f"{PARTNER}-encryption.pem"
    path.write_bytes(
        dev_encryption_key(PARTNER).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def backlog(harness: Harness) -> dict[str, ReferralRequested]:
    """The partner's referrals on Friday 13 March 2026: one that expired (received on 5 February, swept
    on 9 March), one received on Monday 2 March and never answered, one accepted, one declined for
    « Autre », one it sent, one received on Thursday 12 March to acknowledge by Monday 16, and one
    acknowledged on Thursday (the decline form)."""
    clock = harness.lifecycle.clock
    february = datetime(2026, 2, 5, 9, tzinfo=UTC)
    clock.now = february  # type: ignore[attr-defined]
    found = {"expired": harness.refer_with_contact(EXPIRING, at=february)}
    clock.now = MONDAY  # type: ignore[attr-defined]
    found |= {
        "unanswered": harness.refer_with_contact(),
        "accepted": harness.refer(),
        "declined": harness.refer_with_contact(),
        "sent": harness.refer_with_contact(requester=PARTNER, recipient=REQUESTER),
    }
    clock.now = datetime(2026, 3, 9, 9, tzinfo=UTC)  # type: ignore[attr-defined]
    harness.lifecycle.sweep()
    assert harness.status(found["expired"].referral_id) == "expired"
    thursday = datetime(2026, 3, 12, 9, tzinfo=UTC)
    clock.now = thursday  # type: ignore[attr-defined]
    found |= {
        "tomorrow": harness.refer_with_contact(TRICKY, at=thursday),
        "to_decline": harness.refer(at=thursday),
    }
    steps = harness.inbox(now=lambda: FRIDAY)
    log_in(steps, PARTNER)
    for status in ("received", "accepted"):
        take_step(steps, found["accepted"].referral_id, status, PARTNER)
    take_step(steps, found["declined"].referral_id, "received", PARTNER)
    take_step(steps, found["declined"].referral_id, "declined", PARTNER, "other", "Hors de notre champ")
    take_step(steps, found["to_decline"].referral_id, "received", PARTNER)
    assert harness.publisher.refused == []
    return found


def rows(data: bytes, bom: bool = True) -> list[list[str]]:
    """The CSV's rows; `bom`: it must begin with the byte order mark (the devtools protocol hands a
    text response's body over decoded, without it)."""
    text = data.decode("utf-8")
    assert text.startswith(export.BOM) is bom
    return list(csv.reader(io.StringIO(text.removeprefix(export.BOM), newline=""), delimiter=";"))


def test_reminders_expired_referrals_and_the_export_with_contacts_opened_in_the_browser(
    harness: Harness, tmp_path: Path
) -> None:
    require_chromium()
    from playwright.sync_api import expect

    shots = artifacts_dir("inbox", tmp_path)
    referrals = backlog(harness)
    ids = {name: r.referral_id for name, r in referrals.items()}
    problems: list[str] = []
    with harness.serve(now=lambda: FRIDAY) as url, chromium() as browser:

        def open_page(context: Any) -> Any:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(f"{url}/login")
            page.get_by_label("Identifiant de l'organisation").fill(PARTNER)
            page.get_by_label("Jeton d'accès").fill(f"dev-{PARTNER}")
            page.get_by_role("button", name="Se connecter").click()
            page.wait_for_url(f"{url}/referrals")
            return page

        context = browser.new_context(
            locale="fr-FR", viewport={"width": 1400, "height": 900}, accept_downloads=True
        )
        page = open_page(context)

        # the list: the reminders due, then the expired referrals with their dates
        def reminder(name: str, kind: str) -> Any:
            return page.locator(f'#open-referrals tr[data-referral="{ids[name]}"] [data-reminder="{kind}"]')

        expect(reminder("unanswered", "unanswered")).to_have_text("Sans réponse depuis 11 jours")
        expect(reminder("sent", "unanswered")).to_have_text("Sans réponse depuis 11 jours")
        expect(reminder("tomorrow", "deadline_tomorrow")).to_have_text("Rappel : échéance demain")
        assert (
            page.locator(f'#open-referrals tr[data-referral="{ids["accepted"]}"] [data-reminder]').count()
            == 0
        )
        assert page.locator("#open-referrals [data-reminder]").count() == 3
        expect(page.locator("#reminders")).to_contain_text("1 échéance au prochain jour ouvré")
        expect(page.locator("#reminders")).to_contain_text(
            "2 orientations sans réponse depuis 10 jours ou plus"
        )
        cells = page.locator(f'#expired-referrals tr[data-referral="{ids["expired"]}"] td').all_inner_texts()
        # requested, received by the bus, expired by it (in Paris's time)
        assert cells[0] == ids["expired"] and cells[3] == "Transitions Pro Île-de-France"
        assert cells[4:] == ["05/02/2026 à 10:00", "05/02/2026 à 10:00", "09/03/2026 à 10:00"]
        assert page.locator("#expired-referrals tbody tr").count() == 1
        assert page.locator(f'#open-referrals tr[data-referral="{ids["expired"]}"]').count() == 0
        page.screenshot(path=str(shots / "25-orientations-rappels-et-expirees.png"), full_page=True)

        # the encryption key loaded, then the export: the server's CSV, and the file the browser makes
        page.get_by_role("link", name="Clés de l'organisation").click()
        page.get_by_label("Fichier de la clé de chiffrement (PEM, PKCS#8, X25519)").set_input_files(
            pem_file(tmp_path)
        )
        page.get_by_role(
            "button", name="Charger la clé de chiffrement dans ce navigateur", exact=True
        ).click()
        expect(page.locator("#enc-current")).to_contain_text("conforme à l'annuaire")
        answer = page.goto(f"{url}/export")
        assert answer is not None and "script-src 'self'" in answer.headers["content-security-policy"]
        status = page.locator("#export-status")
        expect(status).to_contain_text("les coordonnées de 4 orientations reçues seront déchiffrées")
        with (
            page.expect_response(lambda r: r.url == f"{url}/export.csv") as served,
            page.expect_download() as got,
        ):
            page.get_by_role("button", name="Exporter (CSV)").click()
        server_csv = served.value.body()
        download = got.value
        assert download.suggested_filename == "orientations-transitions-pro-r11-2026-03-13.csv"
        browser_csv = Path(download.path()).read_bytes()
        expect(status).to_contain_text("coordonnées déchiffrées dans ce navigateur pour 4 sur 4.")
        page.screenshot(path=str(shots / "26-export.png"), full_page=True)

        # the decline form: « Autre » makes the comment required
        page.goto(f"{url}/referrals/{ids['to_decline']}")
        note = page.locator("#note-declined")
        assert note.get_attribute("maxlength") == "2000" and not note.evaluate("n => n.required")
        page.locator("#code-declined").select_option("other")
        assert note.evaluate("n => n.required && !n.form.checkValidity()")
        note.fill("Projet hors de notre champ : à réorienter vers l'Apec.")
        assert note.evaluate("n => n.form.checkValidity()")
        page.locator("#code-declined").select_option("person_unreachable")
        note.fill("")
        assert note.evaluate("n => !n.required && n.form.checkValidity()")
        context.close()

        # a browser without the encryption key: the page says why, the contact columns are empty
        context = browser.new_context(
            locale="fr-FR", viewport={"width": 1400, "height": 900}, accept_downloads=True
        )
        page = open_page(context)
        page.get_by_role("link", name="Exporter", exact=True).click()
        status = page.locator("#export-status")
        expect(status).to_contain_text(
            f"Aucune clé de chiffrement de {PARTNER} dans ce navigateur : les colonnes des coordonnées "
            "seront vides"
        )
        assert status.locator("a").get_attribute("href") == "/key?next=/export"
        with page.expect_download() as got:
            page.get_by_role("button", name="Exporter (CSV)").click()
        keyless_csv = Path(got.value.path()).read_bytes()
        expect(status).to_contain_text(
            "sans clé de chiffrement dans ce navigateur : colonnes des coordonnées vides"
        )
        page.screenshot(path=str(shots / "27-export-sans-cle.png"), full_page=True)
        context.close()
    assert problems == []  # no script error, no CSP violation

    # the server's CSV: every referral, no contact column, none of the contacts, none of the boxes
    server = rows(server_csv, bom=False)
    assert tuple(server[0]) == export.COLUMNS and len(server) == 1 + len(ids)
    server_text = server_csv.decode()
    assert leaked(server_text) == []
    for contact in (TRICKY, EXPIRING):
        for value in (contact.last_name, contact.first_name, contact.phone, contact.availability):
            assert str(value) not in server_text
    for request in referrals.values():
        if request.sealed_contact is not None:
            assert base64.b64encode(request.sealed_contact.ciphertext).decode()[:24] not in server_text

    # the browser's file: the server's lines as they were, then the contact columns
    augmented = rows(browser_csv)
    assert augmented[0] == [*export.COLUMNS, *CONTACT_HEADERS]
    assert [line[: len(export.COLUMNS)] for line in augmented] == server
    assert browser_csv.startswith(b"\xef\xbb\xbf") and browser_csv.endswith(b"\r\n")
    contacts = {
        line[0]: dict(zip(CONTACT_HEADERS, line[len(export.COLUMNS) :], strict=True))
        for line in augmented[1:]
    }
    assert contacts[ids["unanswered"]] == {
        "Nom": CONTACT.last_name,
        "Prénom": CONTACT.first_name,
        "Téléphone": "'" + str(CONTACT.phone),  # "+33...": a spreadsheet would compute it
        "Courriel": CONTACT.email,
        "Préférence de contact": "Par l’intermédiaire du référent",
        "Disponibilités": CONTACT.availability,
        "Référent": CONTACT.referent_name,
        "Contact du référent": CONTACT.referent_contact,
    }
    assert contacts[ids["tomorrow"]] == {
        "Nom": 'Lefèvre; dite "Zaza"',
        "Prénom": "Zoé",
        "Téléphone": "'+262 692 00 11 22",
        "Courriel": "",
        "Préférence de contact": "Par courriel",
        "Disponibilités": "'=1+2 le matin",
        "Référent": "'@référente ML",
        "Contact du référent": "ml-sud@example.org",
    }
    assert (contacts[ids["expired"]]["Nom"], contacts[ids["expired"]]["Courriel"]) == ("Marchal", "")
    assert contacts[ids["declined"]]["Nom"] == CONTACT.last_name  # closed, still the organisation's
    for name in ("sent", "accepted", "to_decline"):  # sent (sealed to the other party), or no contact
        assert set(contacts[ids[name]].values()) == {""}, name
    assert b"hors export" not in browser_csv  # the situation is not a column
    # without the key: the same lines, the contact columns empty
    keyless = rows(keyless_csv)
    assert keyless[0] == augmented[0]
    assert [line[: len(export.COLUMNS)] for line in keyless] == server
    assert {cell for line in keyless[1:] for cell in line[len(export.COLUMNS) :]} == {""}
