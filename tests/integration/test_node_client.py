"""A non-Python client of the bus: `tests/node/client.js` (kafkajs + avsc + node:crypto), written from
`schemas/avro/` and the docs alone, publishes an intake and a choice as an operator, reads the notice
and the referral they cause, and answers as the partner with status updates that the router applies.
Everything it sends carries its author's statement signature (`cepbus-signature`), which the bus's
edge verifies; everything it reads it verifies as its author's word: with the directory key its header
names (the client is given the directory file), the key's organisation being the event's producer (the
router passes events on with their author's signature: the notice is the notifier's, a referral its
requester's or the router's). A copy of its update with a tampered signature, or under its name with
another key, is dead-lettered at the bus's edge. The program loads the `.avsc` files and the directory
itself: nothing Python produced is handed to it but its organisations' keys.

Given a contact (`--contact`, a ReferralContact JSON file) and a local partner (`--contact-partner`), it
also refers the person to that partner with their contact sealed (HPKE, `@hpke/core`) to the partner's
newest valid encryption key in the verified directory: the router delivers it unchanged, the partner
opens it in Python, and the contact is in clear in no message; a partner without a valid encryption key
is refused before anything is sent."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cepbus.contract import codec, tracecontext
from cepbus.contract.contact import ContactError, ReferralContact, contact_info, open_contact
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import (
    Event,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    SealedContact,
    derived_event_id,
)
from cepbus.contract.schemas import by_fingerprint, schema_dir
from cepbus.contract.statements import StatementSignature, StatementSigner
from cepbus.contract.topics import REFERRAL_REQUESTED, REFERRAL_STATUS, core_topic, referral_inbox, topic_for
from cepbus.reference import load_reference
from cepbus.reference.authorship import Author, Authorship
from cepbus.reference.directory import (
    DirectoryKey,
    encryption_key_entry,
    load_directory,
    sign_document,
)
from cepbus.reference.producers import ProducerCatalog
from cepbus.sdk.contact import open_referral_contact
from cepbus.sdk.publisher import development_signer, signer_of
from cepbus.trust.development import dev_authority_key, dev_encryption_key, dev_private_key
from cepbus.trust.keys import AuthorityKey
from tests.support import ROOT
from tests.support.bus import RunningBus, dead_letters, wait_for_applied_verdicts
from tests.support.factories import referral, service_id
from tests.support.node import NODE_DIR, require_node

pytestmark = pytest.mark.integration

OPERATOR, PARTNER = "cep-r84", "apec-r84"  # a region no other integration test's partner serves
OTHER_ORG = "cap-emploi-r84"
#: A local partner of the directory (not a CEP operator) the client refers a person to with their contact.
CONTACT_PARTNER, CONTACT_PARTNER_KIND = "transitions-pro-r84", "transitions_pro"
TIMEOUT_S = 60
#: The packaged (development) directory, the one the test bus runs on: what the client verifies with.
DIRECTORY = ROOT / "cepbus" / "reference" / "data" / "directory.json"
#: The authority key that signed it, pinned as `CEPBUS_DIRECTORY_AUTHORITY_KEY` pins it.
AUTHORITY = AuthorityKey.of(dev_authority_key().public_key()).pinned()


@pytest.fixture(scope="module", autouse=True)
def node_client_ready() -> None:
    """Skip (or, with CEPBUS_REQUIRE_NODE=1 as in CI, fail) before the bus starts if Node.js or the
    npm packages are missing."""
    require_node("avsc", "kafkajs", "@hpke/core")


def _seed_hex(org_id: str) -> str:
    """The organisation's raw Ed25519 seed, as an organisation holding its key file would pass it (here
    the derivable development key, which the test bus trusts)."""
    return dev_private_key(org_id).private_bytes_raw().hex()


def _service_key(service: str) -> DirectoryKey:
    """A service's key as the directory lists it (among the services')."""
    now = datetime.now(UTC)
    [key] = [k for k in load_directory().all_keys() if k.org_id == service and k.valid_at(now)]
    return key


def _router() -> DirectoryKey:
    return _service_key("cep-bus-router")


def _edge() -> Authorship:
    directory = load_directory()
    return Authorship(directory, ProducerCatalog.build(load_reference(), directory))


def verified(sent: dict[str, Any]) -> tuple[Event, Author]:
    """What the client sent (its bytes and its header), verified and judged as the bus's edge does."""
    value = bytes.fromhex(sent["value_hex"])
    event = codec.decode(value)
    author = _edge().verify(codec.single_object(value), sent["signature_header"].encode())
    _edge().judge(event, author, core_topic(topic_for(event).name))
    return event, author


@dataclass(frozen=True)
class ClientRun:
    person: str
    framing: str
    seen: dict[str, Any]  # the program's JSON line
    forgeries: dict[str, str]  # the forged referrals put in its inbox first: event id -> reason expected
    operator_referral: ReferralRequested  # a referral the operator published itself, in the inbox first

    def sent(self, status: str) -> ReferralStatusChanged:
        """The update the program sent for `status`, decoded from its bytes by the Python codec."""
        [update] = [u for u in [*self.seen["updates"], self.seen["illegal_update"]] if u["status"] == status]
        event = codec.decode(bytes.fromhex(update["value_hex"]))
        assert isinstance(event, ReferralStatusChanged)
        return event


def who_and_what_it_trusts() -> dict[str, str]:
    """The client's two organisations with their keys, and the directory with its pinned authority."""
    return {
        "operator": OPERATOR,
        "operator-seed": _seed_hex(OPERATOR),
        "partner": PARTNER,
        "partner-seed": _seed_hex(PARTNER),
        "directory": str(DIRECTORY),
        "authority": AUTHORITY,
    }


def client_command(
    bus: RunningBus, person: str, framing: str, overrides: dict[str, str] | None = None
) -> list[str]:
    args = {
        "bootstrap": bus.bootstrap,
        "schemas": str(schema_dir()),
        **who_and_what_it_trusts(),
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


def forge_referrals(bus: RunningBus, person: str) -> dict[str, str]:
    """The attack on the client's reading side: referrals for `person` written straight into the
    partner's inbox (what only the router may write: an ACL refuses this on a real cluster, and the
    client must not believe it either), each produced as the router: with no signature, with a key the
    directory does not list, with the router's key id over another key's signature, and with the
    operator's genuine key (a signer that is not the producer). Returns event id -> the reason expected."""
    forgeries = {
        "unsigned": None,
        "unknown_key": signer_of("cep-bus-router", dev_private_key("not-in-the-directory")),
        "bad_signature": StatementSigner("cep-bus-router", _router().key_id, dev_private_key(OPERATOR)),
        "misattributed": development_signer(OPERATOR),
    }
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, acks="all")
    expected = {}
    try:
        for reason, signer in forgeries.items():
            forged = referral(OPERATOR, PARTNER, person=person).model_copy(update={"region_code": "84"})
            assert forged.envelope.producer_org_id == "cep-bus-router"
            value = codec.encode(forged)
            headers = [] if signer is None else [(SIGNATURE_HEADER, signer.sign([value])[0].header())]
            producer.send(referral_inbox(PARTNER).name, key=person.encode(), value=value, headers=headers)
            expected[str(forged.event_id)] = reason
        producer.flush()
    finally:
        producer.close()
    return expected


def operator_referral(bus: RunningBus, person: str) -> ReferralRequested:
    """A referral the operator publishes itself (signed with its key), once the router has passed it on
    to the partner's inbox, unchanged, with the operator's signature."""
    made = referral(OPERATOR, PARTNER, person=person)
    envelope = made.envelope.model_copy(update={"producer_org_id": OPERATOR})
    made = made.model_copy(update={"envelope": envelope, "region_code": "84"})
    with bus.publisher() as publisher:
        publisher.publish(made)
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partition = TopicPartition(referral_inbox(PARTNER).name, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == person.encode() and codec.decode(record.value).event_id == made.event_id:
                        return made
    finally:
        consumer.close()
    raise AssertionError(f"the router never passed {made.event_id} on to {partition.topic}")


def run_client(bus: RunningBus, framing: str, forged: bool = False) -> ClientRun:
    person = f"p-node-{uuid.uuid4().hex[:12]}"
    published = operator_referral(bus, person)
    forgeries = forge_referrals(bus, person) if forged else {}
    command = client_command(bus, person, framing)
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S + 30, cwd=NODE_DIR)
    assert done.returncode == 0, f"node client exited {done.returncode}:\n{done.stderr[-3000:]}"
    [line] = done.stdout.splitlines()
    return ClientRun(person, framing, json.loads(line), forgeries, published)


@pytest.fixture(scope="module")
def client(bus: RunningBus) -> Callable[[str], ClientRun]:
    """Runs the Node program once per framing it sends, on demand; the single-object run finds forged
    referrals for its person in its inbox first."""
    runs: dict[str, ClientRun] = {}

    def get(framing: str) -> ClientRun:
        if framing not in runs:
            runs[framing] = run_client(bus, framing, forged=framing == "single-object")
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


VERIFY_SCRIPT = """
const c = require('./lib/contract');
const [directory, valueHex, seedHex, org, producer] = process.argv.slice(1);
const keys = c.loadDirectoryKeys(directory);
const single = Buffer.from(valueHex, 'hex');
const [signed] = c.signStatements(c.statementSigner(org, seedHex), [single]);
const header = Buffer.from(signed.header);
const attempt = (f) => {
  try { return f().orgId; } catch (e) { if (e instanceof c.StatementError) return e.reason; throw e; }
};
const early = {at: Date.parse('2019-06-01T00:00:00Z')};
const revoked = new Map(keys);
revoked.set(signed.keyId, Object.assign({}, keys.get(signed.keyId), {revokedAt: Date.now() - 1000}));
process.stdout.write(JSON.stringify({
  now: attempt(() => c.verifyAuthor(single, header, keys, producer)),
  before_its_window: attempt(() => c.verifyAuthor(single, header, keys, producer, early)),
  revoked: attempt(() => c.verifyAuthor(single, header, revoked, producer)),
  as_another_producer: attempt(() => c.verifyAuthor(single, header, keys, 'cep-bus-router')),
  unknown: attempt(() => c.verifyAuthor(single, header, new Map(), producer)),
  services: [...keys.values()].filter((k) => k.orgId.startsWith('cep-bus-')).map((k) => k.orgId).sort(),
}));
"""


def test_the_node_contract_module_holds_each_author_to_a_directory_key_valid_when_read() -> None:
    """lib/contract.js on the packaged directory: a statement verifies as its producer's with the key
    the header names, not before the key's window nor once it is revoked (`key_not_valid`), not as
    another producer's (`misattributed`), not with a key the directory does not list (`unknown_key`)."""
    event = referral(OPERATOR, PARTNER).model_copy(update={"region_code": "84"})
    event = event.model_copy(
        update={"envelope": event.envelope.model_copy(update={"producer_org_id": OPERATOR})}
    )
    done = subprocess.run(
        ["node", "-e", VERIFY_SCRIPT, str(DIRECTORY), codec.encode(event).hex(), _seed_hex(OPERATOR),
         OPERATOR, OPERATOR],
        capture_output=True, text=True, check=True, cwd=NODE_DIR,
    )  # fmt: skip
    assert json.loads(done.stdout) == {
        "now": OPERATOR,
        "before_its_window": "key_not_valid",
        "revoked": "key_not_valid",
        "as_another_producer": "misattributed",
        "unknown": "unknown_key",
        "services": ["cep-bus-deadletters", "cep-bus-ledger", "cep-bus-notifier", "cep-bus-router"],
    }


@pytest.mark.parametrize(
    ("override", "said"),
    [
        (
            {"directory": "/no/such/directory.json"},
            "--directory: /no/such/directory.json: cannot read it (ENOENT)",
        ),
        ({"directory": str(ROOT / "pyproject.toml")}, "pyproject.toml: not JSON"),
        ({"directory": str(schema_dir() / "fr.cepbus.Envelope.avsc")}, "not a cep-bus directory"),
        (
            {"router-key": "iWnT9IYFu8HdYZPePhdVsuuWDQjgUiL2LFRfKK1cL1o="},
            "--router-key is gone: give --directory PATH",
        ),
        ({"directory": "ALTERED"}, "does not verify: the directory was altered"),
        ({"directory": "UNSIGNED"}, "the directory is unsigned; the pinned authority key is"),
        ({"authority": "OTHER"}, "the directory is not signed by the pinned authority key"),
        ({"authority": "cep-bus-directory+0123456789abcdef+AAAA"}, "--authority: its public key is not 32"),
        ({"authority": AUTHORITY[:-6] + "AAAAA="}, "--authority: its key id"),
    ],
)
def test_the_node_client_says_plainly_what_is_wrong_with_its_directory(
    override: dict[str, str], said: str, tmp_path: Path
) -> None:
    """Bad options fail before anything is sent (no broker needed): exit 1, one line saying what, the
    usage, no stack trace. The directory is read only if the pinned authority signed it: one whose
    signed body was altered (here its serial), one without signatures, or the right
    file under another pinned authority is refused."""
    document = json.loads(DIRECTORY.read_text(encoding="utf-8"))
    if override.get("directory") == "ALTERED":
        document["signed"]["serial"] += 1  # as an older or forged version would differ
        override = {**override, "directory": str(tmp_path / "altered.json")}
        (tmp_path / "altered.json").write_text(json.dumps(document), encoding="utf-8")
    elif override.get("directory") == "UNSIGNED":
        override = {**override, "directory": str(tmp_path / "unsigned.json")}
        (tmp_path / "unsigned.json").write_text(json.dumps({**document, "signatures": []}), encoding="utf-8")
    elif override.get("authority") == "OTHER":
        override = {**override, "authority": AuthorityKey.of(Ed25519PrivateKey.generate()).pinned()}
    args = {
        "bootstrap": "127.0.0.1:1",
        **who_and_what_it_trusts(),
        "person": "p-usage",
        **override,
    }
    options = [part for name, value in args.items() for part in (f"--{name}", value)]
    done = subprocess.run(
        ["node", str(NODE_DIR / "client.js"), *options],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=NODE_DIR,
    )
    assert done.returncode == 1 and done.stdout == ""
    first, *rest = done.stderr.splitlines()
    assert first.startswith("cepbus node client: ") and said in first, done.stderr
    assert rest and rest[0].startswith("usage: node client.js") and "--directory PATH" in rest[1]
    assert "    at " not in done.stderr  # no stack trace


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
def test_the_node_client_signs_everything_it_sends_as_its_author(
    client: Callable[[str], ClientRun], framing: str
) -> None:
    """Verified and judged as the bus's edge does, from the bytes the program sent (either framing) and
    the header it sent them with: the intake and the choice are the operator's, the updates the
    partner's; the two first updates are one batch of two under one signature; no update carries the
    superseded in-body signature."""
    seen = client(framing).seen
    for key in ("intake", "choice"):
        event, author = verified(seen[key])
        assert (author.org_id, event.envelope.producer_org_id) == (OPERATOR, OPERATOR), key
    assert _edge().directory.key_by_id(author.key_id) == load_directory().current_key(OPERATOR)
    batch = [StatementSignature.parse(u["signature_header"].encode()) for u in seen["updates"]]
    assert [(s.size, s.index) for s in batch] == [(2, 0), (2, 1)]
    assert batch[0].signature == batch[1].signature and len(batch[0].path) == 1
    for sent in [*seen["updates"], seen["illegal_update"]]:
        update, author = verified(sent)
        assert isinstance(update, ReferralStatusChanged) and author.org_id == PARTNER
        assert update.signer_org_id is None and update.signature is None
    assert StatementSignature.parse(seen["illegal_update"]["signature_header"].encode()).size == 1


@FRAMINGS
def test_the_node_client_verifies_what_it_reads_as_its_authors_word(
    client: Callable[[str], ClientRun], framing: str
) -> None:
    """The router passes events on with their author's signature: the notice is the notifier's, the
    referral it derived from the choice the router's, a referral the operator published itself the
    operator's; the refusal is the router's own. Each verified with its author's directory key, the
    author being the event's producer."""
    run = client(framing)
    seen = run.seen
    notifier, router = _service_key("cep-bus-notifier"), _router()
    assert (seen["notice"]["signature"]["signer"], seen["notice"]["signature"]["key_id"]) == (
        "cep-bus-notifier",
        notifier.key_id,
    )
    for key in ("referral", "refusal"):
        assert seen[key]["producer_org_id"] == "cep-bus-router", key
        assert (seen[key]["signature"]["signer"], seen[key]["signature"]["key_id"]) == (
            "cep-bus-router",
            router.key_id,
        )
    [published] = [v for v in seen["verified"] if v["event_id"] == str(run.operator_referral.event_id)]
    assert published["topic"] == f"cep.referral.inbox.{PARTNER}"
    assert (published["producer_org_id"], published["signer"]) == (OPERATOR, OPERATOR)
    assert published["key_id"] == load_directory().current_key(OPERATOR).key_id
    assert all(v["signer"] == v["producer_org_id"] for v in seen["verified"])
    assert {v["signer"] for v in seen["verified"]} == {"cep-bus-notifier", "cep-bus-router", OPERATOR}
    if framing == "confluent":
        assert seen["unverified"] == []


def test_the_node_client_sets_aside_forged_referrals_in_its_inbox(client: Callable[[str], ClientRun]) -> None:
    """The attack on its reading side: four referrals for its person in its inbox, each produced as the
    router (no signature, a key the directory does not list, the router's key id over another key's
    signature, the operator's genuine key). The client reports each with the bus's reason, believes
    none, and answers only the router's genuine referral."""
    run = client("single-object")
    assert len(run.forgeries) == 4
    refused = {
        u["event_id"]: u["reason"]
        for u in run.seen["unverified"]
        if u["name"] == "fr.cepbus.ReferralRequested"
    }
    assert refused == run.forgeries
    assert set(refused.values()) == {"unsigned", "unknown_key", "bad_signature", "misattributed"}
    assert not {v["event_id"] for v in run.seen["verified"]} & set(run.forgeries)
    assert run.seen["referral"]["event_id"] not in run.forgeries
    assert run.seen["referral"]["event_id"] == service_id(
        run.seen["choice"]["event_id"], "referral-requested"
    )


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
    batch = StatementSignature.parse(seen["updates"][0]["signature_header"].encode())
    assert [h["signature_hex"] for h in entries] == [batch.signature.hex()] * 2  # one batch, one signature
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


def _another(update: ReferralStatusChanged, purpose: str) -> ReferralStatusChanged:
    """The same referral, apec-r84's name, a fresh event id: an update it never sent."""
    event_id = derived_event_id(update.referral_id, f"node-forged-{purpose}-{uuid.uuid4()}")
    return update.model_copy(
        update={
            "envelope": update.envelope.model_copy(update={"event_id": event_id}),
            "status": ReferralStatus.INTERIM_UPDATE,
        }
    )


def test_a_tampered_or_misattributed_copy_of_a_node_update_is_dead_lettered_at_the_edge(
    bus: RunningBus, client: Callable[[str], ClientRun]
) -> None:
    """Three copies of the program's accepted update: its own bytes with one bit of its signature off;
    an update in apec-r84's name signed with cap-emploi-r84's key under apec-r84's key id; one signed by
    cap-emploi-r84 as itself. The router's edge dead-letters each with the reason, before any handler:
    the referral does not move and the partner is sent no rejection it never caused."""
    run = client("single-object")
    [sent] = [u for u in run.seen["updates"] if u["status"] == "accepted"]
    accepted = run.sent("accepted")
    assert codec.encode(accepted).hex() == sent["value_hex"]  # re-sent as the program's own bytes
    genuine = StatementSignature.parse(sent["signature_header"].encode())
    tampered = replace(genuine, signature=bytes([genuine.signature[0] ^ 0x01]) + genuine.signature[1:])
    other_key, posing = _another(accepted, "other-key"), _another(accepted, "posing")
    [wrong_key] = StatementSigner(PARTNER, genuine.key_id, dev_private_key(OTHER_ORG)).sign(
        [codec.encode(other_key)]
    )
    [misattributed] = development_signer(OTHER_ORG).sign([codec.encode(posing)])
    expected = {
        tampered.header(): "bad_signature",
        wrong_key.header(): "bad_signature",
        misattributed.header(): "misattributed",
    }
    with bus.publisher() as publisher:
        publisher.publish(accepted, signed=tampered)
        publisher.publish(other_key, signed=wrong_key)
        publisher.publish(posing, signed=misattributed)
    letters = dead_letters(
        bus, want=3, where=lambda d: d.service == "router" and d.original_signature in expected
    )
    assert {d.original_signature: d.reason.split(":")[0] for d in letters} == expected
    assert {d.source_topic for d in letters} == {REFERRAL_STATUS.name}
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


# -- the person's contact, sealed to a local partner (issue #24) --------------------------------------


def write_contact(path: Path) -> ReferralContact:
    """A contact with values found nowhere else on the bus (a unique email, telephone and name), written
    as the JSON file the client reads; optional fields it leaves out are null in what it seals."""
    marker = uuid.uuid4()
    contact = ReferralContact.model_validate(
        {
            "first_name": "Maëlle",
            "last_name": f"Node{marker.hex[:10]}",
            "phone": f"+33 7 {marker.int % 10**8:08d}",
            "email": f"maelle.{marker.hex[:16]}@exemple-node.fr",
            "contact_preference": "telephone",
            "availability": "Le mardi matin",
            "referent_name": "Conseillère CEP (client Node.js)",
            "referent_contact": "referente.cep@exemple-node.fr",
        }
    )
    written = contact.model_dump(mode="json", exclude={"situation"})  # absent from the file: null
    path.write_text(json.dumps(written, ensure_ascii=False), encoding="utf-8")
    return contact


def topic_records(
    bus: RunningBus, topic: str, until: Callable[[Any], bool] | None = None, timeout_s: float = 30.0
) -> list[Any]:
    """Every record of `topic`, each partition read from its beginning to its end; with `until`, to the
    end it has once a record matching `until` was read (AssertionError if none comes in time)."""
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"{topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        ends = consumer.end_offsets(partitions) if until is None else None
        deadline = time.monotonic() + timeout_s
        while ends is None or any(consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} ({len(records)} records read)")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if ends is None and until is not None and any(until(r) for r in records):
                ends = consumer.end_offsets(partitions)
        return records
    finally:
        consumer.close()


def _is_referral(referral_id: str) -> Callable[[Any], bool]:
    def match(record: Any) -> bool:
        event = codec.decode(record.value)
        return isinstance(event, ReferralRequested) and event.referral_id == referral_id

    return match


def _raw_bytes(record: Any) -> bytes:
    """Everything a record carries: key, value, header names and values."""
    headers = b"".join(name.encode() + (value or b"") for name, value in record.headers or [])
    return (record.key or b"") + record.value + headers


def test_the_node_client_seals_the_persons_contact_to_the_partner(bus: RunningBus, tmp_path: Path) -> None:
    """With --contact and --contact-partner the client, as the operator, refers the person to a local
    partner with their consent and their contact sealed (HPKE, @hpke/core) to the partner's newest valid
    encryption key in the directory it verified. The router delivers the referral to the partner's inbox
    unchanged, with the operator's signature; the partner opens it in Python with its key to exactly the
    contact of the file, another organisation's key does not open it, nor does the box moved to another
    referral; and the clear email, telephone and name are in no message of the request topic nor of the
    inbox."""
    contact = write_contact(tmp_path / "contact.json")
    person = f"p-node-{uuid.uuid4().hex[:12]}"
    overrides = {"contact": str(tmp_path / "contact.json"), "contact-partner": CONTACT_PARTNER}
    command = client_command(bus, person, "single-object", overrides)
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S + 30, cwd=NODE_DIR)
    assert done.returncode == 0, f"node client exited {done.returncode}:\n{done.stderr[-3000:]}"
    [line] = done.stdout.splitlines()
    seen = json.loads(line)
    assert seen["ok"] and seen["referral"]["recipient_org_id"] == PARTNER  # the other steps ran as ever
    key = load_directory().encryption_key_of(CONTACT_PARTNER)
    assert key is not None
    reported = seen["contact_referral"]
    assert (reported["recipient"], reported["recipient_kind"], reported["key_id"]) == (
        CONTACT_PARTNER,
        CONTACT_PARTNER_KIND,
        key.key_id,
    )

    # what it sent: the operator's word, as the bus's edge judges it
    sent, author = verified(reported)
    assert isinstance(sent, ReferralRequested) and author.org_id == OPERATOR
    assert (sent.referral_id, sent.requester_org_id, sent.recipient_org_id) == (
        reported["referral_id"],
        OPERATOR,
        CONTACT_PARTNER,
    )
    assert (sent.envelope.producer_org_id, sent.envelope.person_pseudonym) == (OPERATOR, person)
    assert sent.recipient_kind.value == CONTACT_PARTNER_KIND and sent.region_code == "84" and sent.reason
    assert sent.consent_to_share and sent.shared_profile is None
    assert sent.sealed_contact is not None and sent.sealed_contact.recipient_key_id == key.key_id
    assert sent.sealed_contact.ciphertext_sha256.hex() == reported["ciphertext_sha256"]
    assert hashlib.sha256(sent.sealed_contact.ciphertext).hexdigest() == reported["ciphertext_sha256"]

    # delivered: in the partner's inbox, keyed by the person, unchanged, with the operator's signature
    inbox = referral_inbox(CONTACT_PARTNER).name
    inbox_records = topic_records(bus, inbox, until=_is_referral(sent.referral_id))
    [record] = [r for r in inbox_records if _is_referral(sent.referral_id)(r)]
    delivered = codec.decode(record.value)
    assert isinstance(delivered, ReferralRequested) and delivered == sent
    assert record.key == person.encode()
    assert dict(record.headers)[SIGNATURE_HEADER].decode() == reported["signature_header"]

    # opened by the partner, and by no one else
    assert open_referral_contact(delivered, dev_encryption_key(CONTACT_PARTNER)) == contact
    for other in ("spro-r84", OTHER_ORG, OPERATOR):
        with pytest.raises(ContactError):
            open_referral_contact(delivered, dev_encryption_key(other))
    moved = delivered.model_copy(update={"referral_id": str(uuid.uuid4())})  # the box on another referral
    with pytest.raises(ContactError, match="does not open"):
        open_referral_contact(moved, dev_encryption_key(CONTACT_PARTNER))

    # the contact in clear: in no message of the request topic nor of the inbox
    requested = topic_records(bus, REFERRAL_REQUESTED.name)
    assert any(_is_referral(sent.referral_id)(r) for r in requested)
    secrets = [contact.email, contact.phone, contact.last_name]
    for record in [*requested, *inbox_records]:
        raw = _raw_bytes(record)
        for secret in secrets:
            assert secret is not None and secret.encode() not in raw, (record.topic, record.offset)


def test_the_node_client_sends_no_contact_unless_asked(client: Callable[[str], ClientRun]) -> None:
    """Without --contact the client refers no one itself: its line says so, and nothing else changed."""
    assert client("confluent").seen["contact_referral"] is None


def _directory_with_keys(path: Path, org_id: str, entries: list[dict[str, Any]]) -> Path:
    """The packaged directory with `org_id`'s encryption keys replaced by `entries`, re-signed by the
    development authority (a genuine directory, as the one after a revocation would be)."""
    document = json.loads(DIRECTORY.read_text(encoding="utf-8"))
    body = document["signed"]
    kept = [k for k in body["encryption_keys"] if k["org_id"] != org_id]
    body = {**body, "serial": body["serial"] + 1, "encryption_keys": [*kept, *entries]}
    path.write_text(json.dumps(sign_document(body, dev_authority_key())), encoding="utf-8")
    return path


def _run_offline(options: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The client with no broker to reach (it must stop before it connects)."""
    args = {"bootstrap": "127.0.0.1:1", **who_and_what_it_trusts(), "person": "p-contact", **options}
    command = ["node", str(NODE_DIR / "client.js")]
    command += [part for name, value in args.items() for part in (f"--{name}", value)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=NODE_DIR)


@pytest.mark.parametrize("state", ["revoked", "expired", "not_yet_valid", "unlisted"])
def test_the_node_client_refuses_a_contact_for_a_partner_without_a_valid_encryption_key(
    tmp_path: Path, state: str
) -> None:
    """A directory, genuinely signed, in which the partner's encryption key is revoked, expired, not yet
    valid, or which lists none for it: the client refuses before it connects (no broker here), so nothing
    is sent: exit 1 and one line naming the organisation, no usage, no stack trace."""
    now = datetime.now(UTC)
    public = dev_encryption_key(CONTACT_PARTNER)
    windows = {
        "revoked": {"not_before": now - timedelta(days=30), "revoked_at": now - timedelta(hours=1)},
        "expired": {"not_before": now - timedelta(days=30), "not_after": now - timedelta(hours=1)},
        "not_yet_valid": {"not_before": now + timedelta(days=1)},
    }
    entries = [encryption_key_entry(CONTACT_PARTNER, public, **windows[state])] if state in windows else []
    directory = _directory_with_keys(tmp_path / f"{state}.json", CONTACT_PARTNER, entries)
    write_contact(tmp_path / "contact.json")
    done = _run_offline(
        {
            "directory": str(directory),
            "contact": str(tmp_path / "contact.json"),
            "contact-partner": CONTACT_PARTNER,
        }
    )
    assert done.returncode == 1 and done.stdout == "", done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"cepbus node client: {CONTACT_PARTNER} has no valid encryption key"), line
    if entries:
        assert entries[0]["key_id"] in line
    else:
        assert "it has none listed" in line


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"contact-partner": CONTACT_PARTNER}, "--contact and --contact-partner go together"),
        ({"contact": "CONTACT"}, "--contact and --contact-partner go together"),
        (
            {"contact": "CONTACT", "contact-partner": PARTNER},
            f"--contact-partner: {PARTNER} is not a local partner of the directory",
        ),
        ({"contact": "/no/such/contact.json", "contact-partner": CONTACT_PARTNER}, "cannot read it (ENOENT)"),
        ({"contact": "BAD_EMAIL", "contact-partner": CONTACT_PARTNER}, "email: "),
        ({"contact": "EXTRA_FIELD", "contact-partner": CONTACT_PARTNER}, "unknown fields birth_date"),
    ],
)
def test_the_node_client_says_plainly_what_is_wrong_with_its_contact_options(
    tmp_path: Path, options: dict[str, str], said: str
) -> None:
    """Contact options it cannot act on fail before anything is sent: exit 1, one line, the usage."""
    contact = write_contact(tmp_path / "contact.json").model_dump(mode="json")
    variants = {
        "CONTACT": contact,
        "BAD_EMAIL": {**contact, "email": "not an email"},
        "EXTRA_FIELD": {**contact, "birth_date": "1980-01-01"},
    }
    if options.get("contact") in variants:
        (tmp_path / "variant.json").write_text(json.dumps(variants[options["contact"]]), encoding="utf-8")
        options = {**options, "contact": str(tmp_path / "variant.json")}
    done = _run_offline(options)
    assert done.returncode == 1 and done.stdout == ""
    first, *rest = done.stderr.splitlines()
    assert first.startswith("cepbus node client: ") and said in first, done.stderr
    assert rest and rest[0].startswith("usage: node client.js") and "--contact PATH" in done.stderr
    assert "    at " not in done.stderr


ROTATION_SCRIPT = """
const c = require('./lib/contract');
const s = require('./lib/sealed-contact');
(async () => {
  const [file, authority, org, contactFile, referralId, requester] = process.argv.slice(1);
  const directory = s.loadDirectory(file, c.parseAuthorityKey(authority));
  const key = s.newestEncryptionKey(directory.encryptionKeys, org);
  const type = c.loadContract('../../schemas/avro').types['fr.cepbus.ReferralContact'];
  const plaintext = s.contactPlaintext(type, s.readContact(type, contactFile));
  const sealed = await s.sealContact(plaintext, key, {
    referral_id: referralId, requester_org_id: requester, recipient_org_id: org,
  });
  process.stdout.write(JSON.stringify({
    key_id: sealed.recipient_key_id, box_hex: sealed.ciphertext.toString('hex'),
    sha256_hex: sealed.ciphertext_sha256.toString('hex'), plaintext: plaintext.toString('utf8'),
  }));
})().catch((err) => { process.stderr.write(String(err.stack)); process.exit(1); });
"""


def test_the_node_contact_module_seals_to_the_newest_valid_key(tmp_path: Path) -> None:
    """lib/sealed-contact.js on a rotated directory (an old key still valid, a newer one, a newest one
    revoked, a future one): it seals to the newer valid key; Python opens the box with that key's private
    half, to the contact's canonical JSON (sorted keys, every field) as cepbus.contract.contact writes it."""
    now = datetime.now(UTC)
    keys = {name: X25519PrivateKey.generate() for name in ("old", "current", "revoked", "future")}
    windows: dict[str, dict[str, datetime]] = {
        "old": {"not_before": now - timedelta(days=60)},
        "current": {"not_before": now - timedelta(days=10)},
        "revoked": {"not_before": now - timedelta(days=5), "revoked_at": now - timedelta(days=1)},
        "future": {"not_before": now + timedelta(days=5)},
    }
    entries = {name: encryption_key_entry(CONTACT_PARTNER, keys[name], **windows[name]) for name in keys}
    directory = _directory_with_keys(tmp_path / "rotated.json", CONTACT_PARTNER, list(entries.values()))
    contact = write_contact(tmp_path / "contact.json")
    referral_id = str(uuid.uuid4())
    done = subprocess.run(
        ["node", "-e", ROTATION_SCRIPT, str(directory), AUTHORITY, CONTACT_PARTNER,
         str(tmp_path / "contact.json"), referral_id, OPERATOR],
        capture_output=True, text=True, check=True, cwd=NODE_DIR,
    )  # fmt: skip
    out = json.loads(done.stdout)
    current = entries["current"]
    assert out["key_id"] == current["key_id"]
    assert out["plaintext"].encode() == contact.plaintext()
    box = bytes.fromhex(out["box_hex"])
    sealed = SealedContact(
        recipient_key_id=out["key_id"], ciphertext=box, ciphertext_sha256=bytes.fromhex(out["sha256_hex"])
    )
    assert hashlib.sha256(box).digest() == sealed.ciphertext_sha256
    binding = {"referral_id": referral_id, "requester_org_id": OPERATOR, "recipient_org_id": CONTACT_PARTNER}
    assert open_contact(sealed, keys["current"], current["key_id"], **binding) == contact
    assert contact_info(referral_id, OPERATOR, CONTACT_PARTNER, current["key_id"]).startswith(
        b"cep-bus/contact/v1\x00"
    )
