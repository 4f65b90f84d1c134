"""A non-Python client of the bus: `tests/node/client.js` (kafkajs + avsc), written from
`schemas/avro/` and the docs alone, publishes an intake and a choice as an operator, reads the notice
and the referral they cause, and answers as the partner with signed status updates that the router
applies; a copy of an update with a tampered signature, or signed with another organisation's key, is
refused. The program loads the `.avsc` files itself: nothing Python produced is handed to it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cepbus.contract import codec, tracecontext
from cepbus.contract.models import ReferralStatus, ReferralStatusChanged, derived_event_id
from cepbus.contract.schemas import by_fingerprint, schema_dir
from cepbus.contract.signatures import sign_status
from cepbus.trust.development import dev_private_key
from tests.support.bus import RunningBus, dead_letters, wait_for_applied_verdicts
from tests.support.factories import service_id
from tests.support.node import NODE_DIR, require_node

pytestmark = pytest.mark.integration

OPERATOR, PARTNER = "cep-r84", "apec-r84"  # a region no other integration test's partner serves
OTHER_ORG = "cap-emploi-r84"
TIMEOUT_S = 60


@pytest.fixture(scope="module", autouse=True)
def node_client_ready() -> None:
    """Skip (or, with CEPBUS_REQUIRE_NODE=1 as in CI, fail) before the bus starts if Node.js or the
    npm packages are missing."""
    require_node("avsc", "kafkajs")


def _seed_hex(org_id: str) -> str:
    """The organisation's raw Ed25519 seed, as a partner holding its key file would pass it (here the
    derivable development key, which the test bus trusts)."""
    raw = dev_private_key(org_id).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return raw.hex()


@dataclass(frozen=True)
class ClientRun:
    person: str
    framing: str
    seen: dict[str, Any]  # the program's JSON line

    def sent(self, status: str) -> ReferralStatusChanged:
        """The update the program sent for `status`, decoded from its bytes by the Python codec."""
        [update] = [u for u in [*self.seen["updates"], self.seen["illegal_update"]] if u["status"] == status]
        event = codec.decode(bytes.fromhex(update["value_hex"]))
        assert isinstance(event, ReferralStatusChanged)
        return event


def client_command(
    bus: RunningBus, person: str, framing: str, overrides: dict[str, str] | None = None
) -> list[str]:
    args = {
        "bootstrap": bus.bootstrap,
        "schemas": str(schema_dir()),
        "operator": OPERATOR,
        "partner": PARTNER,
        "partner-seed": _seed_hex(PARTNER),
        "partner-kind": "apec",
        "region": "84",
        "departement": "69",
        "person": person,
        "framing": framing,
        "timeout": str(TIMEOUT_S),
        **(overrides or {}),
    }
    options = [part for name, value in args.items() for part in (f"--{name}", value)]
    return ["node", str(NODE_DIR / "client.js"), *options]


def run_client(bus: RunningBus, framing: str) -> ClientRun:
    person = f"p-node-{uuid.uuid4().hex[:12]}"
    command = client_command(bus, person, framing)
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S + 30, cwd=NODE_DIR)
    assert done.returncode == 0, f"node client exited {done.returncode}:\n{done.stderr[-3000:]}"
    [line] = done.stdout.splitlines()
    return ClientRun(person, framing, json.loads(line))


@pytest.fixture(scope="module")
def client(bus: RunningBus) -> Callable[[str], ClientRun]:
    """Runs the Node program once per framing it sends, on demand."""
    runs: dict[str, ClientRun] = {}

    def get(framing: str) -> ClientRun:
        if framing not in runs:
            runs[framing] = run_client(bus, framing)
        return runs[framing]

    return get


def read_side(bus: RunningBus, path: str, as_org: str = PARTNER) -> tuple[int, Any]:
    """GET on the router's read side as `as_org` (development tokens: `dev-<org>`)."""
    url = f"http://127.0.0.1:{bus.referrals_http_port}{path}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer dev-{as_org}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def history(bus: RunningBus, referral_id: str, want: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The referral's applied history once it holds `want` entries (the refusal the client waited for
    came after both, so they are normally there already)."""
    deadline = time.monotonic() + timeout_s
    while True:
        code, view = read_side(bus, f"/referrals/{referral_id}")
        entries: list[dict[str, Any]] = view["history"] if code == 200 else []
        if len(entries) >= want or time.monotonic() > deadline:
            return entries
        time.sleep(0.25)


def test_the_node_contract_module_finds_every_writer_schema_the_python_codec_knows() -> None:
    """lib/contract.js computes, from the .avsc files, the same CRC-64-AVRO fingerprint (as framed)
    and Confluent id for every event schema, current or released, as the Python registry."""
    script = (
        "const c = require('./lib/contract'); const k = c.loadContract(process.argv[1]);"
        "const out = {}; for (const [hex, t] of k.byFingerprint) out[hex] = [t.name, c.confluentId(t)];"
        "process.stdout.write(JSON.stringify(out));"
    )
    done = subprocess.run(
        ["node", "-e", script, str(schema_dir())], capture_output=True, text=True, check=True, cwd=NODE_DIR
    )
    theirs: dict[str, list[Any]] = json.loads(done.stdout)
    ours = by_fingerprint()
    assert ours and {bytes.fromhex(h) for h in theirs} >= set(ours)  # JS also indexes non-event records
    for fingerprint, schema in ours.items():
        name, schema_id = theirs[fingerprint.hex()]
        assert name == schema.name
        assert schema_id == int.from_bytes(fingerprint[:4], "big") & 0x7FFFFFFF, name


FRAMINGS = pytest.mark.parametrize("framing", ["single-object", "confluent"])


@FRAMINGS
def test_the_node_client_reads_the_notice_and_the_referral(
    client: Callable[[str], ClientRun], framing: str
) -> None:
    run = client(framing)
    seen = run.seen
    intake_id, choice_id = seen["intake"]["event_id"], seen["choice"]["event_id"]
    notice = seen["notice"]
    assert notice["person_pseudonym"] == run.person and notice["intake_event_id"] == intake_id
    assert notice["event_id"] == service_id(intake_id, "notice-requested", "notice-issued")
    assert notice["notice_request_id"] == service_id(intake_id, "notice-requested")
    assert notice["topic"] == f"cep.notice.inbox.{OPERATOR}"  # its own: the national topic is not its to read
    assert notice["producer_org_id"] == "cep-bus-notifier" and notice["operator_id"] == OPERATOR
    assert notice["correlation_id"] == intake_id  # the journey's id: the intake's, as the client set it
    assert "apec" in notice["inform"] and notice["obligation"] == "mandatory" and notice["language"] == "fr"
    assert notice["text_sha256_ok"] and notice["text_excerpt"]
    referral = seen["referral"]
    assert referral["topic"] == f"cep.referral.inbox.{PARTNER}"
    assert referral["referral_id"] == service_id(choice_id, "referral")
    assert referral["event_id"] == service_id(choice_id, "referral-requested")
    assert (referral["requester_org_id"], referral["recipient_org_id"]) == (OPERATOR, PARTNER)
    assert referral["recipient_kind"] == "apec" and referral["causation_id"] == choice_id
    assert referral["consent_to_share"] and referral["shared_profile"]["cadre"] is True
    assert {seen["intake"]["framing"], seen["choice"]["framing"]} == {framing}


@FRAMINGS
def test_the_node_client_reads_the_framing_the_bus_writes_and_the_bus_reads_both(
    client: Callable[[str], ClientRun], framing: str
) -> None:
    """The client tells the framings apart as the Python codec does, finds the same writer schema
    from the frame's fingerprint or schema id, and reads the headers the docs promise. What it may read
    (its notice inbox, its referral inbox, its refusals) the router writes, in Confluent framing on the
    session bus (tests/integration/conftest.py); the same Node decoder reads single-object frames in
    tests/node/vectors.js. The bus, for its part, read what the client sent in either framing (the
    parameter): the notice and the referral came back."""
    seen = client(framing).seen
    expected = {
        "notice": "fr.cepbus.NoticeIssued",
        "referral": "fr.cepbus.ReferralRequested",
        "refusal": "fr.cepbus.ReferralUpdateRejected",
    }
    for key, name in expected.items():
        schema, body_at = codec.writer_schema(bytes.fromhex(seen[key]["frame_header_hex"]))
        assert schema.name == name, key
        assert seen[key]["framing"] == {5: "confluent", 10: "single-object"}[body_at], key
        assert seen[key]["headers_ok"], key
    framings = {seen[key]["framing"] for key in expected}
    assert framings == {"confluent"}, f"the router's framing changed? {framings}"
    assert {seen["intake"]["framing"], seen["choice"]["framing"]} == {framing}


@FRAMINGS
def test_the_bus_continues_the_node_clients_trace(client: Callable[[str], ClientRun], framing: str) -> None:
    """Every event the bus derived from what the client sent carries the client's W3C trace id, each
    with a span of its own: the notice from its intake, the referral from its choice, the refusal
    from its update."""
    seen = client(framing).seen
    spans = set()
    for key in ("notice", "referral", "refusal"):
        context = tracecontext.parse(seen[key]["traceparent"])
        assert context is not None, key
        assert context.trace_id == seen["trace_id"], key
        spans.add(context.span_id)
    assert len(spans) == 3


@FRAMINGS
def test_the_router_applies_the_node_clients_signed_updates(
    bus: RunningBus, client: Callable[[str], ClientRun], framing: str
) -> None:
    run = client(framing)
    seen = run.seen
    referral_id = seen["referral"]["referral_id"]
    received, accepted = run.sent("received"), run.sent("accepted")
    entries = history(bus, referral_id, want=2)
    assert [(h["event_id"], h["status"]) for h in entries] == [
        (str(received.event_id), "received"),
        (str(accepted.event_id), "accepted"),
    ]
    assert all(h["signer_org_id"] == PARTNER for h in entries)
    assert [h["signature_hex"] for h in entries] == [(u.signature or b"").hex() for u in (received, accepted)]
    code, view = read_side(bus, f"/referrals/{referral_id}")
    assert code == 200 and view["referral"]["status"] == "accepted"
    # the ledger keeps the router's verdicts on them
    assert wait_for_applied_verdicts(bus, {str(received.event_id), str(accepted.event_id)}) == set()
    # a signed step the lifecycle does not allow: refused, and the refusal says the state stayed
    refusal = seen["refusal"]
    assert refusal["rejected_event_id"] == seen["illegal_update"]["event_id"]
    assert (refusal["reason_code"], refusal["attempted_status"], refusal["current_status"]) == (
        "not_allowed",
        "completed",
        "accepted",
    )


def test_a_tampered_or_misattributed_copy_of_a_node_update_is_refused(
    bus: RunningBus, client: Callable[[str], ClientRun]
) -> None:
    run = client("single-object")
    accepted = run.sent("accepted")
    assert accepted.signature is not None
    flipped = bytes([accepted.signature[0] ^ 0x01]) + accepted.signature[1:]
    tampered = accepted.model_copy(update={"signature": flipped})  # same event, one bit off
    unsigned = accepted.model_copy(
        update={
            "envelope": accepted.envelope.model_copy(
                update={"event_id": derived_event_id(accepted.referral_id, f"node-forged-{uuid.uuid4()}")}
            ),
            "status": ReferralStatus.INTERIM_UPDATE,
        }
    )
    wrong_key = sign_status(unsigned, PARTNER, dev_private_key(OTHER_ORG))  # apec-r84's name, another key
    forged = {codec.encode(tampered), codec.encode(wrong_key)}
    with bus.publisher() as publisher:
        publisher.publish_many([tampered, wrong_key])
    letters = dead_letters(bus, want=2, where=lambda d: d.original_value in forged)
    assert sorted(d.reason.split(":")[0] for d in letters) == ["bad_signature", "bad_signature"]
    assert {d.service for d in letters} == {"router"}
    entries = history(bus, run.seen["referral"]["referral_id"], want=3, timeout_s=0)  # dead-lettered: done
    assert [h["status"] for h in entries] == ["received", "accepted"]  # the state did not move


def test_the_node_client_says_what_it_waited_for_when_nothing_comes(bus: RunningBus) -> None:
    """An intake of a person no operator must be told about (neither cadre nor disabled, at the
    regional operator) yields no notice: the client gives up at its timeout, exit 2, and says why."""
    person = f"p-node-{uuid.uuid4().hex[:12]}"
    command = client_command(bus, person, "single-object", {"partner-kind": "france_travail", "timeout": "3"})
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert done.returncode == 2 and done.stdout == ""
    assert "timed out after 3 s waiting for the NoticeIssued of the intake" in done.stderr
