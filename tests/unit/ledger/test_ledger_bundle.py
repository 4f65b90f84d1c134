"""Export bundles and the offline verifier, through the `cep-bus ledger` commands: a bundle verifies against
the pinned key, and any changed byte, dropped entry or forged checkpoint makes `verify --bundle` exit
non-zero naming it. (Fail-closed key pinning and malformed bundles: test_bundle_fail_closed.py.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog import merkle
from cepbus.auditlog.note import Checkpoint, Signer, Verifier
from cepbus.contract.codec import encode
from cepbus_app.cli import app
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record

runner = CliRunner()


def event_record(event: Any) -> NewRecord:
    return ledger_record(event)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    db = tmp_path / "ledger.db"
    key = tmp_path / "signing.key"
    signer = Signer.generate("cep-bus.test/ledger")
    Path(key).write_text(str(signer) + "\n")
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", "cep-bus.test/ledger")
    events = [intake(person=f"psn-{i % 4}", region=("11", "84", "53")[i % 3]) for i in range(11)]
    with SqlLedgerStore(f"sqlite:///{db}") as store:
        store.append([event_record(e) for e in events])
    return {"db": db, "key": key, "events": events, "bundle": tmp_path / "bundle.json", "tmp": tmp_path,
            "vkey": str(signer.verifier())}  # fmt: skip


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def export(ledger: dict[str, Any]) -> dict[str, Any]:
    result = run("ledger", "export", "--out", str(ledger["bundle"]))
    assert result.exit_code == 0, result.output
    return dict(json.loads(ledger["bundle"].read_text()))


def verify(ledger: dict[str, Any], document: dict[str, Any], *extra: str) -> Any:
    """`verify --bundle`, pinning the genuine published key unless `extra` says otherwise."""
    path = ledger["tmp"] / "checked.json"
    path.write_text(json.dumps(document))
    return run("ledger", "verify", "--bundle", str(path), *(extra or ("--key", ledger["vkey"])))


def test_export_then_verify_passes_offline(ledger: dict[str, Any]) -> None:
    document = export(ledger)
    assert [e["index"] for e in document["entries"]] == list(range(11))
    assert set(document) >= {"checkpoint", "verifier_key", "entries"}
    ledger["db"].unlink()  # offline: no database at all
    result = verify(ledger, document)  # against the published key
    assert result.exit_code == 0, result.output
    assert "bundle verified: 11 entries" in result.output
    assert f"signed by the pinned key {ledger['vkey']}" in result.output
    trust = ledger["tmp"] / "trusted.keys"
    trust.write_text(f"# the ledger's published key\n{ledger['vkey']}\n")
    assert verify(ledger, document, "--trust", str(trust)).exit_code == 0
    unpinned = run("ledger", "verify", "--bundle", str(ledger["bundle"]))  # fail closed: no key, no verdict
    assert unpinned.exit_code == 2 and "no pinned key" in unpinned.stderr


@pytest.mark.parametrize("index", [0, 5, 10])
def test_any_changed_byte_in_an_entry_fails(ledger: dict[str, Any], index: int) -> None:
    document = export(ledger)
    leaf = bytearray(base64.b64decode(document["entries"][index]["leaf_b64"]))
    for position in (len(leaf) // 2, len(leaf) - 1):
        tampered = json.loads(json.dumps(document))
        changed = bytearray(leaf)
        changed[position] ^= 0x01
        tampered["entries"][index]["leaf_b64"] = base64.b64encode(bytes(changed)).decode()
        result = verify(ledger, tampered)
        assert result.exit_code == 1
        assert f"entry {index}" in result.output or "root" in result.output


def test_changed_content_fails(ledger: dict[str, Any]) -> None:
    document = export(ledger)
    document["entries"][3]["content"]["facts"]["region_code"] = "99"
    result = verify(ledger, document)
    assert result.exit_code == 1 and "entry 3: content does not match its leaf" in result.output


def test_dropped_entry_fails(ledger: dict[str, Any]) -> None:
    document = export(ledger)
    del document["entries"][4]
    result = verify(ledger, document)
    assert result.exit_code == 1 and "entries: 10 in the bundle, the checkpoint signs 11" in result.output
    for entry in document["entries"][4:]:  # renumbered to hide the gap: the leaves give another root
        entry["index"] -= 1
    document["checkpoint"] = Signer.generate("x").sign("x\n1\n" + base64.b64encode(bytes(32)).decode() + "\n")
    assert verify(ledger, document).exit_code == 1


def test_forged_checkpoints_fail(ledger: dict[str, Any]) -> None:
    document = export(ledger)
    text, signature = document["checkpoint"].split("\n\n")
    checkpoint = Checkpoint.parse(text + "\n")
    # 1. the text changed under the genuine signature (a smaller tree, to hide the last entries)
    smaller = Checkpoint(checkpoint.origin, 10, checkpoint.root).text()
    result = verify(ledger, {**document, "checkpoint": smaller + "\n" + signature})
    assert result.exit_code == 1 and "checkpoint signature" in result.output
    # 2. a checkpoint signed by another key under the same name (and that key put in the bundle)...
    forger = Signer.generate(checkpoint.origin)
    hashes = [merkle.leaf_hash(base64.b64decode(e["leaf_b64"])) for e in document["entries"][:10]]
    forged_note = forger.sign(Checkpoint(checkpoint.origin, 10, merkle.root_of(hashes)).text())
    forged = {**document, "entries": document["entries"][:10], "verifier_key": str(forger.verifier()),
              "checkpoint": forged_note}  # fmt: skip
    # ...fails against the published key, which is what an auditor pins
    result = verify(ledger, forged, "--key", ledger["vkey"])
    assert result.exit_code == 1 and "not signed by a pinned key" in result.output
    assert "which is not pinned" in result.output
    # 3. a valid-looking signature line made up for the genuine key
    genuine = Verifier.parse(document["verifier_key"])
    blob = base64.b64encode(genuine.key_id + bytes(64)).decode()
    made_up = f"{text}\n\n\u2014 {genuine.name} {blob}\n"
    result = verify(ledger, {**document, "checkpoint": made_up})
    assert result.exit_code == 1 and "does not verify" in result.output


def test_prove_and_consistency_commands(ledger: dict[str, Any]) -> None:
    event_id = str(ledger["events"][6].event_id)
    result = run("ledger", "prove", "--event", event_id)
    assert result.exit_code == 1 and "not covered by a checkpoint" in result.output
    assert run("ledger", "checkpoint").exit_code == 0
    result = run("ledger", "prove", "--event", event_id)
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    verifier = Verifier.parse(proof["verifier_key"])
    from cepbus.auditlog.note import open_checkpoint

    checkpoint = open_checkpoint(proof["checkpoint"], verifier)
    path = [base64.b64decode(h) for h in proof["inclusion_path_b64"]]
    assert (proof["index"], proof["tree_size"], len(path)) == (6, 11, 4)
    merkle.verify_inclusion(base64.b64decode(proof["leaf_hash_b64"]), 6, 11, path, checkpoint.root)

    result = run("ledger", "consistency", "--old", "3", "--new", "11")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    merkle.verify_consistency(3, 11, base64.b64decode(doc["old_root_b64"]), checkpoint.root,
                              [base64.b64decode(h) for h in doc["consistency_path_b64"]])  # fmt: skip
    assert run("ledger", "consistency", "--old", "5", "--new", "12").exit_code == 1
    assert run("ledger", "prove", "--event", "no-such-event").exit_code == 1


def test_erasure_keeps_the_bundle_and_proofs_valid(ledger: dict[str, Any]) -> None:
    assert run("ledger", "checkpoint").exit_code == 0
    result = run("ledger", "erase", "--person", "psn-1")
    assert result.exit_code == 0 and "index 11" in result.output
    assert run("ledger", "erase", "--person", "psn-1").exit_code == 1
    document = export(ledger)
    assert len(document["entries"]) == 12
    result = verify(ledger, document)
    assert result.exit_code == 0, result.output
    assert run("ledger", "verify").exit_code == 0
    assert run("ledger", "prove", "--event", str(ledger["events"][1].event_id)).exit_code == 0
    with SqlLedgerStore(f"sqlite:///{ledger['db']}") as store:
        from services.ledger.store import ErasedError

        with pytest.raises(ErasedError):
            store.open_payload(1)
        assert store.open_payload(2) == encode(ledger["events"][2])


def test_plain_verify_checks_the_database(ledger: dict[str, Any]) -> None:
    assert run("ledger", "checkpoint").exit_code == 0
    result = run("ledger", "verify")
    assert result.exit_code == 0 and "ledger verified: 11 entries" in result.output
