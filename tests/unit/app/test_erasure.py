"""`cep-bus erase --person P` across every store: afterwards no database file (nor its WAL) holds the
person's pseudonym, profile, notice or keys, read as bytes (what waited in an outbox included); the
ledger's proofs still verify; each store erases the person and nobody else, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cepbus.contract import codec
from cepbus.contract.models import (
    IntakePurpose,
    NoticeRequested,
    ReferralStatus,
)
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus_app.cli import app
from cepbus_app.erasure import STORES, erase_person
from services.deadletters.store import DeadLetterStore
from services.ledger.store import KEYS, SqlLedgerStore
from services.mailer.decisions import Referral as MailReferral
from services.mailer.store import MailerStore, QueuedEmail
from services.notifier.handlers import NotifierHandlers
from services.notifier.store import NotifierStore
from services.router.handlers import RouterHandlers
from services.router.referrals.store import ReferralStore
from services.router.store import RouterStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, dead_letter_of, intake, referral, switch_choice, update
from tests.support.fakes import MovableClock
from tests.support.ledger import ledger_record
from tests.support.postgres import fresh_schema

PERSON = "p-erase-me-7f3a9c"
NOTE = "rappeler Mme Exemple au 06 12 34 56 78"


def files_of(tmp_path: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}


def test_erasure_leaves_no_trace_of_the_person_in_any_store_file(tmp_path: Path) -> None:
    stores = ("ledger", "router", "referrals", "notifier", "deadletters", "mailer")
    urls = {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name in stores}
    the_intake = intake(person=PERSON, boeth=True, birth_year=1937)
    profile_json = the_intake.profile.model_dump_json().encode()
    # the router's state, through its own handler, and its decisions waiting in its outbox
    router_store = RouterStore(urls["router"])
    decided = RouterHandlers(load_reference(), store=router_store).on_intake(the_intake)
    router_store.outbox.add(decided)
    assert router_store.intake(str(the_intake.event_id)).profile.boeth is True  # type: ignore[union-attr]
    router_store.close()
    # the notice, rendered and waiting in the notifier's outbox
    [request] = [out.event for out in decided if isinstance(out.event, NoticeRequested)]
    notices = NotifierHandlers(load_reference()).on_notice_requested(request)
    text = notices[0].event.text.encode()  # type: ignore[attr-defined]
    with NotifierStore(urls["notifier"]) as notifier:
        notifier.outbox.add(notices)
    # a referral with a partner's free-text note
    referrals = ReferralStore(urls["referrals"])
    lifecycle = Admitted(referrals, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    ref = referral(person=PERSON)
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, ReferralStatus.RECEIVED).model_copy(update={"note": NOTE}))
    assert referrals.history(ref.referral_id)[0].note == NOTE
    referrals.close()
    # the ledger, and a dead letter of the intake in the dead-letter archive
    with SqlLedgerStore(urls["ledger"]) as ledger:
        value = codec.encode(the_intake)
        ledger.append([ledger_record(the_intake, INTAKE_REGISTERED.name, occurred_ms=0, person=PERSON)])
        key = bytes(ledger._query(f"SELECT aes_key FROM {KEYS} WHERE pseudonym = ?", (PERSON,))[0][0])
    letter = dead_letter_of(the_intake, INTAKE_REGISTERED.name, key=PERSON.encode())
    with DeadLetterStore(urls["deadletters"]) as dead_letters:
        dead_letters.record([letter], 0)
        assert dead_letters.original(str(letter.event_id))[1] == value
    # the mailer's memory of the referral and its email not sent yet (nothing of the person but the key)
    with MailerStore(urls["mailer"]) as mailer:
        parties = MailReferral(ref.referral_id, ref.requester_org_id, ref.recipient_org_id)
        mailer.remember_referral(parties, PERSON, 0)
        recipient = ref.recipient_org_id
        email = QueuedEmail("e-1", "new_referral", recipient, "a@b.example.org", "s", "t", "h", PERSON)
        assert mailer.queue([email], 0)
    before = b"".join(files_of(tmp_path).values())
    for secret in (PERSON.encode(), text, b"R-CAPEMPLOI-BOETH"):  # the check below can fail
        assert secret in before

    result = CliRunner().invoke(
        app,
        ["erase", "--person", PERSON],
        env={
            "CEPBUS_LEDGER_DATABASE_URL": urls["ledger"],
            "CEPBUS_ROUTER_DATABASE_URL": urls["router"],
            "CEPBUS_REFERRALS_DATABASE_URL": urls["referrals"],
            "CEPBUS_NOTIFIER_DATABASE_URL": urls["notifier"],
            "CEPBUS_DEADLETTERS_DATABASE_URL": urls["deadletters"],
            "CEPBUS_MAILER_DATABASE_URL": urls["mailer"],
        },
    )
    assert result.exit_code == 0, result.output
    assert "ledger key destroyed" in result.output and "router 1 intake" in result.output
    assert (
        "dead letters 1" in result.output and "unsent events 3" in result.output
    )  # decision, request, notice

    for name, data in files_of(tmp_path).items():
        for secret in (PERSON.encode(), profile_json, key, NOTE.encode(), text, b"R-CAPEMPLOI-BOETH"):
            assert secret not in data, f"{name} still holds {secret[:20]!r}"
    with SqlLedgerStore(urls["ledger"]) as ledger:
        assert ledger.verify().ok
    router_store = RouterStore(urls["router"])
    erased = router_store.intake(str(the_intake.event_id))
    router_store.close()
    assert erased is not None and erased.person_pseudonym is None and erased.profile.boeth is None
    with MailerStore(urls["mailer"]) as mailer:
        assert mailer.states() == [] and mailer.referral(ref.referral_id) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Each store's URL: a SQLite file each, or one fresh PostgreSQL schema (their tables differ)."""
    if request.param == "sqlite":
        yield {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name, _ in STORES}
        return
    with fresh_schema("erasure") as url:
        yield {name: url for name, _ in STORES}


def seed(person: str, urls: dict[str, str]) -> dict[str, str]:
    """One person through the router (intake with a disability, a switch to Cap emploi with consent),
    the referral store (the referral, a step with a note), the notifier (the notice) and the dead
    letters, everything decided left unsent in the outboxes; the ids to look for afterwards."""
    plain = intake(person=person, boeth=True, region="84", departement="69")
    journey = plain.envelope.model_copy(update={"correlation_id": f"dossier-{person}"})  # operator's text
    the_intake = plain.model_copy(
        update={
            "envelope": journey,
            "purpose": IntakePurpose.DEMISSION_RECONVERSION,
            "cep_requested_on": date(2026, 2, 2),
        }
    )
    with RouterStore(urls["router"]) as router:
        handlers = RouterHandlers(load_reference(), store=router)
        decided = handlers.on_intake(the_intake)
        choice = switch_choice(the_intake)
        referred = handlers.on_choice(choice)
        router.outbox.add([*decided, *referred])
    [request] = [out.event for out in decided if isinstance(out.event, NoticeRequested)]
    with NotifierStore(urls["notifier"]) as notifier:
        notifier.outbox.add(NotifierHandlers(load_reference()).on_notice_requested(request))
    with ReferralStore(urls["referrals"]) as referrals:
        lifecycle = Admitted(referrals, load_directory(), load_reference(), clock=MovableClock(MONDAY))
        ref = referral(person=person)
        referrals.outbox.add(lifecycle.on_requested(ref))
        lifecycle.on_status(update(ref, ReferralStatus.RECEIVED).model_copy(update={"note": NOTE}))
    letter = dead_letter_of(
        the_intake,
        INTAKE_REGISTERED.name,
        reason="decode_error: birth_year 1937",
        error_class="ValidationError",
        key=person.encode(),
    )
    with DeadLetterStore(urls["deadletters"]) as dead_letters:
        dead_letters.record([letter], 0)
    return {"intake": str(the_intake.event_id), "referral": ref.referral_id, "letter": str(letter.event_id)}


def what_remains(person: str, ids: dict[str, str], urls: dict[str, str]) -> dict[str, object]:
    with RouterStore(urls["router"]) as router:
        record = router.intake(ids["intake"])
        assert record is not None  # the intake row stays: the regulation's own facts
        choices = router.choices(ids["intake"])
        router_unsent = [m for m in router.outbox.pending() if m.key == person.encode()]
    with ReferralStore(urls["referrals"]) as referrals:
        kept = referrals.with_history(ids["referral"])
        referral_unsent = [m for m in referrals.outbox.pending() if m.key == person.encode()]
    with NotifierStore(urls["notifier"]) as notifier:
        notices = [m for m in notifier.outbox.pending() if m.key == person.encode()]
    with DeadLetterStore(urls["deadletters"]) as dead_letters:
        letter = dead_letters.get(ids["letter"])
    return {
        "pseudonym": record.person_pseudonym,
        "boeth": record.profile.boeth,
        "purpose": record.purpose,
        "correlation": record.correlation_id != record.intake_event_id,
        "chosen": [c.chosen_operator_kind for c in choices],
        "referral": kept is not None and bool(kept[1]),
        "unsent": len(router_unsent) + len(referral_unsent) + len(notices),
        "dead letter": letter is not None,
    }


def test_each_store_erases_the_person_and_nobody_else(store_urls: dict[str, str]) -> None:
    erased, kept = "p-erased-5e1d", "p-kept-9b20"
    ids = {person: seed(person, store_urls) for person in (erased, kept)}
    before = {person: what_remains(person, ids[person], store_urls) for person in (erased, kept)}
    assert before[kept] == {
        "pseudonym": kept, "boeth": True, "purpose": "demission_reconversion", "correlation": True,
        "chosen": ["cap_emploi"], "referral": True, "unsent": before[kept]["unsent"], "dead letter": True,
    }  # fmt: skip
    assert (
        int(str(before[erased]["unsent"])) >= 4
    )  # the decision, the notice request, the referral, the notice

    report = erase_person(erased, **{f"{name}_url": url for name, url in store_urls.items()})

    assert (report.router_intakes, report.referrals, report.dead_letters) == (1, 1, 1)
    assert report.outbox_rows == before[erased]["unsent"]
    assert report.ledger_erasure_index is None  # the ledger never held the person
    assert what_remains(erased, ids[erased], store_urls) == {
        "pseudonym": None, "boeth": None, "purpose": None, "correlation": False, "chosen": [None],
        "referral": False, "unsent": 0, "dead letter": False,
    }  # fmt: skip
    assert what_remains(kept, ids[kept], store_urls) == before[kept]
