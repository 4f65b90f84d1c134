"""The organisation's export and its expired referrals (issue #24), on the router's lifecycle and read
side: `GET /export.csv` is every referral the organisation sent or received, open or closed, as a CSV a
French spreadsheet opens (UTF-8 with BOM, `;`, CRLF), with French labels and the region's local times,
and **no contact**: rendered with referrals that carry sealed contacts, it holds none of their values
nor their boxes. The export page hands its script the boxes of the referrals received (only those), as
data. The list shows the referrals the bus expired, with their dates; the decline form takes the
national list, and « Autre » with a comment of up to 2,000 characters."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from cepbus.contract.contact import ReferralContact
from cepbus.contract.models import REFUSAL_REASON_LABELS, ReferralRequested, RefusalReason
from cepbus.contract.readside import ExportedReferralView
from cepbus.reference.directory import load_directory
from services.inbox import export, steps
from services.inbox.readside import Unavailable
from tests.support.factories import MONDAY
from tests.unit.inbox.harness import (
    OTHER,
    PARTNER,
    REQUESTER,
    Harness,
    log_in,
    page_data,
    prepare,
    take_step,
)
from tests.unit.inbox.test_inbox_contact import leaked

SECOND = ReferralContact(
    first_name="Zoé",
    last_name="Lefèvre; « la seconde »",
    phone="06 98 76 54 32",
    email="zoe.lefevre@example.org",
    contact_preference="email",
    availability='=HYPERLINK("http://evil.example")',
    situation=None,
    referent_name="Référente Mission locale",
    referent_contact="ml@example.org",
)


def parsed(text: str) -> list[list[str]]:
    assert text.startswith(export.BOM)
    return list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))


def by_id(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    header, *lines = rows
    return {line[0]: dict(zip(header, line, strict=True)) for line in lines}


def boxes_of(requests: list[ReferralRequested]) -> list[str]:
    """Every spelling of the requests' sealed boxes a text could hold: base64 (whole and in pieces),
    hex, and their digests."""
    found = []
    for request in requests:
        sealed = request.sealed_contact
        assert sealed is not None
        b64 = base64.b64encode(sealed.ciphertext).decode()
        found += [b64, sealed.ciphertext.hex(), sealed.ciphertext_sha256.hex()]
        found += [b64[i : i + 24] for i in range(0, len(b64) - 24, 24)]
    return found


@dataclass
class Backlog:
    ids: dict[str, str]  # the referrals' ids by name
    sealed: list[ReferralRequested]  # those that carry a contact


@pytest.fixture
def backlog(harness: Harness) -> Backlog:
    """Referrals of the partner in every state the export names, some with sealed contacts: received
    and open, declined for « Autre » and for a reason of the list, completed, sent by the partner, and
    expired (the router's sweep, 31 days on); and one between two other organisations."""
    clock = harness.lifecycle.clock
    expired = harness.refer_with_contact()
    sent_expired = harness.refer(requester=PARTNER, recipient=REQUESTER)
    clock.now = MONDAY + timedelta(days=31)  # type: ignore[attr-defined]
    harness.lifecycle.sweep()
    assert harness.status(expired.referral_id) == harness.status(sent_expired.referral_id) == "expired"
    open_ = harness.refer_with_contact()
    second = harness.refer_with_contact(SECOND)
    declined_other, declined_full, completed = harness.refer_with_contact(), harness.refer(), harness.refer()
    sent = harness.refer_with_contact(requester=PARTNER, recipient=REQUESTER)
    elsewhere = harness.refer(requester=REQUESTER, recipient=OTHER)
    inbox = harness.inbox(now=lambda: MONDAY + timedelta(days=32))
    log_in(inbox, PARTNER)
    for referral_id in (declined_other.referral_id, declined_full.referral_id, completed.referral_id):
        take_step(inbox, referral_id, "received", PARTNER)
    take_step(inbox, declined_other.referral_id, "declined", PARTNER, "other", "Pas de place avant l'été")
    take_step(inbox, declined_full.referral_id, "declined", PARTNER, "session_full")
    for status in ("accepted", "appointment_booked", "first_appointment_held"):
        take_step(inbox, completed.referral_id, status, PARTNER)
    take_step(inbox, completed.referral_id, "completed", PARTNER, "training_started")
    assert harness.publisher.refused == []
    ids = {
        "expired": expired.referral_id,
        "sent_expired": sent_expired.referral_id,
        "open": open_.referral_id,
        "second": second.referral_id,
        "declined_other": declined_other.referral_id,
        "declined_full": declined_full.referral_id,
        "completed": completed.referral_id,
        "sent": sent.referral_id,
        "elsewhere": elsewhere.referral_id,
    }
    return Backlog(ids, [expired, open_, second, declined_other, sent])


def test_the_servers_csv_has_every_referral_in_french_and_no_contact(
    harness: Harness, backlog: Backlog
) -> None:
    ids = backlog.ids
    inbox = harness.inbox(now=lambda: MONDAY + timedelta(days=32))
    log_in(inbox, PARTNER)
    answer = inbox.get("/export.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="orientations-transitions-pro-r11-2026-04-03.csv"'
    )
    assert answer.headers["cache-control"] == "no-store"
    raw = answer.content
    assert raw.startswith(b"\xef\xbb\xbfOrientation;R\xc3\xb4le;")  # UTF-8 with its BOM, `;`
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    text = raw.decode("utf-8")
    rows = parsed(text)
    assert tuple(rows[0]) == export.COLUMNS
    lines = by_id(rows)
    assert set(lines) == set(ids.values()) - {ids["elsewhere"]}  # every referral of the partner, no other

    # no contact: none of its values (in any spelling), none of the boxes
    assert leaked(text) == []
    for contact in (SECOND,):
        assert contact.last_name not in text and str(contact.email) not in text
    assert not [box for box in boxes_of(backlog.sealed) if box in text]
    assert not {"Nom", "Prénom", "Téléphone", "Courriel"} & set(rows[0])

    opened = lines[ids["open"]]
    assert opened == {
        "Orientation": ids["open"],
        "Rôle": "reçue",
        "Prescripteur": load_directory().get(REQUESTER).name,
        "Identifiant du prescripteur": REQUESTER,
        "Destinataire": "Transitions Pro Île-de-France",
        "Identifiant du destinataire": PARTNER,
        "Type de destinataire": "Apec",  # the factory's kind
        "Région": "Île-de-France (11)",
        "Personne (pseudonyme)": "p-test",
        "Statut": "Demandée",
        "Demandée le": "02/03/2026 10:00",  # 09:00 UTC, in Paris (winter time)
        "Reçue par le bus le": "02/04/2026 11:00",  # the router's clock, in Paris (summer time)
        "Mise à jour le": "02/04/2026 11:00",
        "Échéance en cours": "Accusé de réception",
        "Échéance le": "07/04/2026",  # two working days after Thursday 2 April: Friday, (Easter) Tuesday
        "Motif de clôture": "",
    }
    assert lines[ids["declined_other"]]["Statut"] == "Refusée"
    assert lines[ids["declined_other"]]["Motif de clôture"] == "Autre"
    assert "Pas de place" not in text  # the decline's comment is not exported
    assert lines[ids["declined_full"]]["Motif de clôture"] == "Session complète, pas de place"
    assert lines[ids["completed"]]["Statut"] == "Terminée"
    assert lines[ids["completed"]]["Motif de clôture"] == "training_started"  # an outcome: its code
    for name in ("declined_other", "completed"):
        assert lines[ids[name]]["Échéance en cours"] == lines[ids[name]]["Échéance le"] == ""
    assert lines[ids["expired"]]["Statut"] == "Expirée (sans réponse dans les délais)"
    assert lines[ids["expired"]]["Mise à jour le"] == "02/04/2026 11:00"  # when the bus expired it
    assert (lines[ids["sent"]]["Rôle"], lines[ids["sent_expired"]]["Rôle"]) == ("envoyée", "envoyée")
    assert lines[ids["sent"]]["Identifiant du destinataire"] == REQUESTER
    assert lines[ids["second"]]["Rôle"] == "reçue"

    # the requester's export: the same referrals, its own roles
    requester = harness.inbox(now=lambda: MONDAY + timedelta(days=32))
    log_in(requester, REQUESTER)
    theirs = by_id(parsed(requester.get("/export.csv").text))
    assert theirs[ids["open"]]["Rôle"] == "envoyée" and theirs[ids["sent"]]["Rôle"] == "reçue"
    assert leaked(requester.get("/export.csv").text) == []


def test_the_export_page_gives_its_script_the_boxes_of_the_referrals_received_only(
    harness: Harness, backlog: Backlog
) -> None:
    ids = backlog.ids
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    page = inbox.get("/export")
    assert page.status_code == 200 and leaked(page.text) == []
    data = page_data(page.text)
    received_with_contact = {ids[n] for n in ("expired", "open", "second", "declined_other")}
    assert {box["referral_id"] for box in data["boxes"]} == received_with_contact  # not the one sent
    by_referral = {r.referral_id: r for r in backlog.sealed}
    for box in data["boxes"]:
        sealed = by_referral[box["referral_id"]].sealed_contact
        assert sealed is not None
        assert box == {
            "referral_id": box["referral_id"],
            "requester_org_id": REQUESTER,
            "recipient_org_id": PARTNER,
            "key_id": sealed.recipient_key_id,
            "ciphertext_b64": base64.b64encode(sealed.ciphertext).decode(),
            "ciphertext_sha256_hex": sealed.ciphertext_sha256.hex(),
        }
    assert data["separator"] == ";" and data["csv_url"] == "/export.csv"
    assert data["contact_columns"] == [list(c) for c in export.CONTACT_COLUMNS]
    assert data["key_page"] == "/key?next=/export"
    assert '<script type="module" src="/static/export.js"></script>' in page.text
    assert "Exporter (CSV)" in page.text and "9 orientations" not in page.text
    assert "8 orientations, dont 6 reçues" in page.text  # not the referral between two others
    # the key page leads back to the export
    assert page_data(inbox.get("/key?next=/export").text)["next"] == "/export"
    assert page_data(inbox.get("/key?next=https://evil.example/export").text)["next"] is None
    # the requester gets the box of the referral the partner sent it, and no other
    requester = harness.inbox()
    log_in(requester, REQUESTER)
    theirs = page_data(requester.get("/export").text)["boxes"]
    assert [box["referral_id"] for box in theirs] == [ids["sent"]]


def test_the_export_needs_a_session(harness: Harness) -> None:
    anonymous = harness.inbox()
    for path in ("/export", "/export.csv"):
        answer = anonymous.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_a_field_a_spreadsheet_would_run_is_written_as_text() -> None:
    assert [export.cell(v) for v in ("=1+1", "+33 6", "-2", "@SUM(A1)", "\tx", "\rx", "a=b", "")] == [
        "'=1+1",
        "'+33 6",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "a=b",
        "",
    ]
    text = export.csv_text([["a;b", 'dit "oui"', "deux\nlignes", "=x"] + [""] * (len(export.COLUMNS) - 4)])
    assert text.splitlines()[1].startswith('"a;b";"dit ""oui""";"deux')


def test_the_list_shows_the_expired_referrals_with_their_dates(harness: Harness, backlog: Backlog) -> None:
    ids = backlog.ids
    inbox = harness.inbox(now=lambda: MONDAY + timedelta(days=32))
    log_in(inbox, PARTNER)
    page = inbox.get("/referrals").text
    opened, expired = page.split('<section aria-labelledby="expired-title" id="expired">')
    assert "Orientations expirées" in expired
    rows = re.findall(r'<tr data-referral="([^"]+)">(.*?)</tr>', expired, re.S)
    assert {referral_id for referral_id, _ in rows} == {ids["expired"], ids["sent_expired"]}
    for _, row in rows:
        cells = [c.strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        # requested on Monday 2 March (the requester's claim), received the same day, expired on 2 April
        assert cells[4:] == ["02/03/2026 à 10:00", "02/03/2026 à 10:00", "02/04/2026 à 11:00"]
    assert ids["expired"] not in opened and ids["open"] in opened
    assert ids["declined_other"] not in page and ids["elsewhere"] not in page
    # another organisation: none of the partner's expired referrals
    other = harness.inbox()
    log_in(other, OTHER)
    assert "Aucune orientation expirée pour" in other.get("/referrals").text


def test_the_list_still_shows_the_open_referrals_when_the_export_cannot_be_read(harness: Harness) -> None:
    request = harness.refer()

    def broken(org_id: str, token: str) -> list[ExportedReferralView]:
        raise Unavailable("read side: unexpected answer 404 for the export")

    harness.read_side.export = broken  # type: ignore[method-assign]
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    page = inbox.get("/referrals")
    assert page.status_code == 200 and request.referral_id in page.text
    assert "Les orientations expirées ne peuvent pas être lues pour le moment." in page.text
    assert inbox.get("/export").status_code == 503


def test_the_decline_form_takes_the_national_list_and_a_comment_of_2000_characters(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "received", PARTNER)
    page = inbox.get(f"/referrals/{request.referral_id}").text
    select = page[page.index('<select id="code-declined"') :].split("</select>")[0]
    options = [
        (v, html.unescape(t)) for v, t in re.findall(r'<option value="([^"]*)">([^<]*)</option>', select)
    ]
    # the national list, in its order, with the contract's labels
    assert options[1:] == [(r.value, REFUSAL_REASON_LABELS[r]) for r in RefusalReason]
    assert ("other", "Autre (message obligatoire)") in options
    assert '<textarea id="note-declined" name="note" maxlength="2000"' in page
    assert '<script type="module" src="/static/decline.js"></script>' in page
    # « Autre » without a comment, or with blanks only: refused before anything is signed
    for blank in ("", "  \r\n "):
        refused = prepare(inbox, request.referral_id, "declined", "other", blank)
        assert refused.status_code == 409 and "(reason_needs_message)" in refused.text
    # 2,001 characters: refused; 2,000 with line breaks (sent as CRLF by the browser): signed and applied
    too_long = prepare(inbox, request.referral_id, "declined", "other", "x" * 2001)
    assert too_long.status_code == 409 and "(bad_note)" in too_long.text
    lines = ("Personne déjà suivie par un autre partenaire ; à recontacter en septembre. " * 30)[:1992]
    note = lines[:995] + "\r\n" + lines[995:] + "\r\n\r\nMerci"
    expected = note.replace("\r\n", "\n")
    assert len(expected) == 2000 and len(note) > 2000
    done = take_step(inbox, request.referral_id, "declined", PARTNER, "other", note)
    assert done.status_code == 200 and harness.status(request.referral_id) == "declined"
    declined = harness.publisher.published[-1]
    assert (declined.reason_code, declined.note) == ("other", expected)
    assert steps.NOTE_MAX == 2000
    # a control character is still refused
    other = harness.refer()
    take_step(inbox, other.referral_id, "received", PARTNER)
    refused = prepare(inbox, other.referral_id, "declined", "other", "bip\x07")
    assert refused.status_code == 409 and "(bad_note)" in refused.text


def test_export_times_are_the_regions(harness: Harness) -> None:
    """La Réunion is UTC+4: the same instant is another hour, and possibly another day, there."""
    request = harness.refer()
    reunion = request.model_copy(update={"referral_id": "reunion-1", "region_code": "04"})
    harness.lifecycle.clock.now = datetime(2026, 3, 5, 21, 30, tzinfo=UTC)  # type: ignore[attr-defined]
    harness.lifecycle.on_requested(reunion)
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    lines = by_id(parsed(inbox.get("/export.csv").text))
    assert lines["reunion-1"]["Reçue par le bus le"] == "06/03/2026 01:30"
    assert lines["reunion-1"]["Région"].endswith("(04)") and "Réunion" in lines["reunion-1"]["Région"]
    assert lines[request.referral_id]["Reçue par le bus le"] == "02/03/2026 10:00"
