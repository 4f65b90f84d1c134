"""`cep-bus erase --person P` across every store: afterwards no database file (nor its WAL) holds the
person's pseudonym, profile or keys, read as bytes; the ledger's proofs still verify."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, ReferralStatus, new_envelope
from cepbus.contract.signatures import sign_status
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from cepbus_app.cli import app
from services.deadletters.store import DeadLetterStore
from services.ledger.store import KEYS, SqlLedgerStore
from services.router.handlers import RouterHandlers
from services.router.referrals.handlers import ReferralLifecycle
from services.router.referrals.store import ReferralStore
from services.router.store import RouterStore
from tests.support.factories import MONDAY, RECIPIENT, intake, referral, update
from tests.support.fakes import MovableClock
from tests.support.ledger import ledger_record

PERSON = "p-erase-me-7f3a9c"
NOTE = "rappeler Mme Exemple au 06 12 34 56 78"


def files_of(tmp_path: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}


def test_erasure_leaves_no_trace_of_the_person_in_any_store_file(tmp_path: Path) -> None:
    stores = ("ledger", "router", "referrals", "deadletters")
    urls = {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name in stores}
    the_intake = intake(person=PERSON, boeth=True, birth_year=1937)
    profile_json = the_intake.profile.model_dump_json().encode()
    # the router's state, through its own handler
    router_store = RouterStore(urls["router"])
    RouterHandlers(load_reference(), store=router_store).on_intake(the_intake)
    assert router_store.intake(str(the_intake.event_id)).profile.boeth is True  # type: ignore[union-attr]
    router_store.close()
    # a referral with a partner's free-text note
    referrals = ReferralStore(urls["referrals"])
    lifecycle = ReferralLifecycle(referrals, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    ref = referral(person=PERSON)
    lifecycle.on_requested(ref)
    noted = update(ref, ReferralStatus.RECEIVED).model_copy(update={"note": NOTE, "signature": None})
    lifecycle.on_status(sign_status(noted, RECIPIENT, dev_private_key(RECIPIENT)))
    assert referrals.history(ref.referral_id)[0].note == NOTE
    referrals.close()
    # the ledger, and a dead letter of the intake in the dead-letter archive
    with SqlLedgerStore(urls["ledger"]) as ledger:
        value = codec.encode(the_intake)
        ledger.append([ledger_record(the_intake, INTAKE_REGISTERED.name, occurred_ms=0, person=PERSON)])
        key = bytes(ledger._query(f"SELECT aes_key FROM {KEYS} WHERE pseudonym = ?", (PERSON,))[0][0])
    letter = DeadLetter(
        envelope=new_envelope(DeadLetter, producer_org_id="cep-bus-router"),
        service="router",
        source_topic=INTAKE_REGISTERED.name,
        source_partition=0,
        source_offset=7,
        reason="handler_error: test",
        error_class="RuntimeError",
        original_key=PERSON.encode(),
        original_value=value,
    )
    with DeadLetterStore(urls["deadletters"]) as dead_letters:
        dead_letters.record([letter], 0)
        assert dead_letters.original(str(letter.event_id))[1] == value
    before = files_of(tmp_path)
    assert any(PERSON.encode() in data for data in before.values())  # the check below can fail

    result = CliRunner().invoke(
        app,
        ["erase", "--person", PERSON],
        env={
            "CEPBUS_LEDGER_DATABASE_URL": urls["ledger"],
            "CEPBUS_ROUTER_DATABASE_URL": urls["router"],
            "CEPBUS_REFERRALS_DATABASE_URL": urls["referrals"],
            "CEPBUS_DEADLETTERS_DATABASE_URL": urls["deadletters"],
        },
    )
    assert result.exit_code == 0, result.output
    assert "ledger key destroyed" in result.output and "router 1 intake" in result.output
    assert "dead letters 1" in result.output

    for name, data in files_of(tmp_path).items():
        for secret in (PERSON.encode(), profile_json, key, NOTE.encode()):
            assert secret not in data, f"{name} still holds {secret[:20]!r}"
    with SqlLedgerStore(urls["ledger"]) as ledger:
        assert ledger.verify().ok
    router_store = RouterStore(urls["router"])
    erased = router_store.intake(str(the_intake.event_id))
    router_store.close()
    assert erased is not None and erased.person_pseudonym is None and erased.profile.boeth is None
