"""The browser's statement encoder (`services/inbox/static/statement.js`) in a second runtime, Node.js
(`tests/node/inbox-statement.js`, no npm package needed): fastavro's bytes for every case of
`statement_cases.py`, a changed digest for a one-bit change of any field, refusals of what it does not
encode; and the signatures it makes with WebCrypto verify with the directory's key over fastavro's
statement, as the router's edge verifies them. Skips without Node.js (fails with CEPBUS_REQUIRE_NODE=1)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from cepbus.contract.statements import StatementSignature
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from services.inbox.app import HERE
from tests.support.authorship import authorship
from tests.support.node import NODE_DIR, require_node
from tests.unit.inbox.statement_cases import CASES, ORG, case_documents

SCRIPT = NODE_DIR / "inbox-statement.js"


def run(
    folder: Path, cases: list[dict[str, Any]], module: Path | None = None
) -> subprocess.CompletedProcess[str]:
    key = dev_private_key(ORG).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = folder / "cases.json"
    path.write_text(json.dumps({"cases": cases, "pkcs8_base64": base64.b64encode(key).decode()}))
    command = ["node", str(SCRIPT), str(path), *([str(module)] if module else [])]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_browser_encoder_writes_fastavros_bytes_and_its_signatures_verify(tmp_path: Path) -> None:
    require_node()
    cases = case_documents()
    done = run(tmp_path, cases)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["cases"] == len(CASES) >= 35
    fields_per_case = 14  # 7 of the envelope, 7 of the update
    assert summary["changes"] + summary["refused_changes"] == len(CASES) * fields_per_case
    assert summary["refused_changes"] == 2 * len(CASES)  # the event type and the in-body signature
    assert summary["refusals"] == 10
    [key] = load_directory().keys_of(ORG)
    for case in cases:
        signed = StatementSignature(key.key_id, base64.b64decode(summary["signatures"][case["name"]]))
        author = authorship().verify(bytes.fromhex(case["statement_hex"]), signed.header())
        assert (author.org_id, author.key_id) == (ORG, key.key_id), case["name"]


def test_the_node_check_fails_on_a_statement_one_bit_off(tmp_path: Path) -> None:
    """The check can fail: one bit of fastavro's bytes changed for one case, it names that case."""
    require_node()
    cases = case_documents()
    raw = bytearray(bytes.fromhex(cases[20]["statement_hex"]))
    raw[-1] ^= 0x01
    cases[20]["statement_hex"] = raw.hex()
    failed = run(tmp_path, cases)
    assert failed.returncode == 1 and failed.stdout == ""
    assert f"{cases[20]['name']}: statement bytes differ from fastavro" in failed.stderr


def test_the_node_check_fails_on_an_encoder_that_writes_a_field_out_of_order(tmp_path: Path) -> None:
    """A broken encoder (note and reason code swapped, as a misread schema would) is caught."""
    require_node()
    source = (HERE / "static" / "statement.js").read_text()
    note, reason = "  ['note', 'optional string'],\n", "  ['reason_code', 'optional string'],\n"
    assert reason + note in source
    broken = tmp_path / "statement.js"
    broken.write_text(source.replace(reason + note, note + reason))
    failed = run(tmp_path, case_documents(), broken)
    assert failed.returncode == 1 and "statement bytes differ from fastavro" in failed.stderr
