"""Who said what, offline (issue #23): an auditor's verifier checks each statement of an export bundle
against the directory version in force when the ledger recorded it, from the versions the log itself
holds, and rejects the bundle at the first entry whose signature or signer does not hold. The attacks
are played by whoever writes the ledger's database (the ledger's own operator), who can append any
leaf and re-sign the checkpoint with the ledger's key: the statements give them away."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.bundle import BundleError, export_bundle, verify_bundle
from cepbus.auditlog.leaf import StatementProof
from cepbus.auditlog.note import Signer
from cepbus.contract import codec
from cepbus.contract.models import ReferralStatus
from cepbus.contract.statements import StatementSigner, statement_digest
from cepbus.reference.directory import load_directory, packaged_directory_text, read_document, sign_document
from cepbus.trust.development import dev_authority_key, dev_private_key
from cepbus.trust.keys import AuthorityKey, format_authority_key
from cepbus_app.cli import app
from services.ledger.directory_log import directory_record
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore
from tests.support.authorship import signer
from tests.support.factories import intake, referral, update
from tests.support.ledger import ledger_record, open_ledger

ORIGIN = "cep-bus.test/ledger"


def bundle_of(tmp_path: Path, records: list[NewRecord], *, log_directory: bool = True) -> dict[str, Any]:
    """The records appended after the directory the ledger runs with, checkpointed and exported as the
    ledger's key signs them (what its operator can always do)."""
    key = Signer.generate(ORIGIN)
    opened = open_ledger if log_directory else SqlLedgerStore
    with opened(f"sqlite:///{tmp_path / 'ledger.db'}") as store:
        store.append(records)
        store.checkpoint(key)
        latest = store.latest_checkpoint()
        assert latest is not None
        return {"document": export_bundle(store, latest, key), "key": key.verifier()}


def signed_by(org_id: str, event: Any, key_id: str | None = None, raw_key: Any = None) -> NewRecord:
    """The event's record with its statement signed by `org_id`'s development key (or `raw_key` under
    `key_id`): what a forger puts in a leaf."""
    record = ledger_record(event, signed=True)
    made = StatementSigner(org_id, key_id or signer(org_id).key_id, raw_key or dev_private_key(org_id)).sign(
        [codec.encode(event)]
    )[0]
    return replace(record, statement=StatementProof.of(statement_digest(codec.encode(event)), made))


def test_a_genuine_log_verifies_statement_by_statement(tmp_path: Path) -> None:
    ref = referral()
    records = [ledger_record(e, signed=True) for e in (intake(), intake(), ref)]
    records.append(ledger_record(update(ref, ReferralStatus.RECEIVED), "cep.referral.status", signed=True))
    made = bundle_of(tmp_path, records)
    authors = verify_bundle(made["document"], made["key"]).authors
    assert authors is not None
    assert (authors.signed, authors.digest_only, authors.unsigned) == (3, 1, 0)
    assert authors.directory_serials == [load_directory().serial] and not authors.authority_checked


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        # an intake of cep-r84's signed by another operator with its own genuine key
        (lambda e: signed_by("cep-r11", e), "signed by cep-r11"),
        # cep-r84's key id over a signature by another key
        (lambda e: signed_by("cep-r84", e, raw_key=dev_private_key("cep-r11")), "bad_signature"),
        # a key no directory version lists
        (lambda e: signed_by("cep-r84", e, key_id="00112233445566ff"), "not in directory serial"),
    ],
    ids=["another-signer", "bad-signature", "unknown-key"],
)
def test_an_entry_whose_signature_or_signer_does_not_hold_is_rejected_offline(
    tmp_path: Path, forge: Callable[[Any], NewRecord], message: str
) -> None:
    forged = intake(operator_id="cep-r84", region="84", departement="69")
    made = bundle_of(tmp_path, [ledger_record(intake(), signed=True), forge(forged)])
    with pytest.raises(BundleError, match=rf"entry 2 \(fr.cepbus.IntakeRegistered\): .*{message}"):
        verify_bundle(made["document"], made["key"])


def test_a_statement_with_no_directory_logged_before_it_is_rejected(tmp_path: Path) -> None:
    made = bundle_of(tmp_path, [ledger_record(intake(), signed=True)], log_directory=False)
    with pytest.raises(BundleError, match="no directory version logged before it"):
        verify_bundle(made["document"], made["key"])


def reissued(serial: int, authority: Any = None) -> Any:
    """The packaged directory re-issued under `serial`, signed by `authority` (default: the development
    authority that signs the packaged one)."""
    from cepbus.reference import load_reference
    from cepbus.reference.directory import Directory

    body = dict(read_document(packaged_directory_text())["signed"], serial=serial)
    return Directory.build(load_reference(), sign_document(body, authority or dev_authority_key()))


def test_an_older_directory_logged_after_a_newer_one_is_rejected(tmp_path: Path) -> None:
    """The ledger's operator logs an older version (from before a key was revoked) to make a statement
    verify again: the log shows the rollback."""
    newer, older = load_directory().serial + 2, load_directory().serial + 1
    made = bundle_of(tmp_path, [directory_record(reissued(newer)), directory_record(reissued(older))])
    with pytest.raises(BundleError, match=f"directory serial {older} logged after serial {newer}"):
        verify_bundle(made["document"], made["key"])


def test_with_the_authority_pinned_a_directory_it_did_not_sign_is_rejected(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    made = bundle_of(tmp_path, [ledger_record(intake(), signed=True)])
    pinned = AuthorityKey.of(dev_authority_key())
    authors = verify_bundle(made["document"], made["key"], directory_authority=pinned).authors
    assert authors is not None and authors.authority_checked and authors.signed == 1
    other = bundle_of(
        tmp_path / "other",
        [directory_record(reissued(load_directory().serial + 1, Ed25519PrivateKey.generate()))],
    )
    with pytest.raises(
        BundleError, match=r"entry 1: directory version: .*not signed by the pinned authority"
    ):
        verify_bundle(other["document"], other["key"], directory_authority=pinned)


def test_the_auditors_command_says_who_said_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = bundle_of(tmp_path, [ledger_record(intake(), signed=True)])
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(made["document"]), encoding="utf-8")
    monkeypatch.setenv("CEPBUS_DIRECTORY_AUTHORITY_KEY", format_authority_key(dev_authority_key()))
    result = CliRunner().invoke(app, ["ledger", "verify", "--bundle", str(path), "--key", str(made["key"])])
    assert result.exit_code == 0, result.output
    assert "authors: 1 statements signed by their producer's key" in result.output
    assert "checked against the pinned directory authority" in result.output
