"""The partner SDK's `Subscriber` hands the application only what its author signed: each message's
statement signature verified with the directory key its header names (valid when read), the key's
organisation held to be the event's producer, the event addressed to the organisation whose topic it
is on. The rest is never delivered: logged, counted, kept. Played on fake Kafka records (no broker),
as the router now passes referrals on with their author's own signature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER, TRACEPARENT_HEADER
from cepbus.contract.models import (
    Event,
    NoticeIssued,
    NoticeRequested,
    ReferralRequested,
    ReferralStatus,
    ReferralUpdateRejected,
    new_envelope,
)
from cepbus.contract.statements import StatementSignature, StatementSigner
from cepbus.contract.topics import referral_inbox, referral_rejections
from cepbus.reference import load_reference
from cepbus.reference.authorship import Authorship
from cepbus.reference.directory import load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.sdk.partner import Delivery, Subscriber, Unverified
from cepbus.sdk.publisher import development_signer
from cepbus.trust.development import dev_private_key
from services.notifier.handlers import NotifierHandlers
from services.router.handlers import RouterHandlers
from tests.support.factories import intake, referral

OPERATOR, PARTNER, OTHER = "cep-r84", "apec-r84", "cap-emploi-r84"
ROUTER, NOTIFIER = "cep-bus-router", "cep-bus-notifier"
INBOX, REJECTED = referral_inbox(PARTNER).name, referral_rejections(PARTNER).name


@dataclass(frozen=True)
class Record:
    """What kafka-python's consumer hands over, as far as the Subscriber reads it."""

    topic: str
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]]


class FakeConsumer:
    """A KafkaConsumer-like object: `poll` returns the records given, once."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.assigned: list[Any] = []

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, list[Record]]:
        records, self.records = self.records, []
        return {"partition": records} if records else {}

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


def subscriber(**kwargs: Any) -> tuple[Subscriber, FakeConsumer]:
    consumer = FakeConsumer()
    return Subscriber(PARTNER, consumer=consumer, **kwargs), consumer


def record(
    event: Event,
    signer: StatementSigner | None,
    topic: str = INBOX,
    *,
    offset: int = 0,
    confluent: bool = False,
    header: bytes | None = None,
) -> Record:
    """`event` as a message of `topic`, signed by `signer` over its single-object bytes (none: unsigned;
    `header`: that header value instead)."""
    value = codec.encode(event)
    headers = [(TRACEPARENT_HEADER, b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
    if header is None and signer is not None:
        header = signer.sign([value])[0].header()
    if header is not None:
        headers.append((SIGNATURE_HEADER, header))
    if confluent:
        value = codec.confluent_frame(value, codec.contract_schema_id(codec.writer_schema(value)[0]))
    return Record(topic, offset, value, headers)


def operator_referral() -> ReferralRequested:
    """A referral the requesting operator published itself (the router passes it on as signed)."""
    routed = referral(OPERATOR, PARTNER, person=f"p-{uuid.uuid4().hex[:8]}")
    envelope = routed.envelope.model_copy(update={"producer_org_id": OPERATOR})
    return routed.model_copy(update={"envelope": envelope, "region_code": "84"})


def router_referral() -> ReferralRequested:
    """A referral the router derived from a person's choice: its producer is the router."""
    return referral(OPERATOR, PARTNER, person=f"p-{uuid.uuid4().hex[:8]}").model_copy(
        update={"region_code": "84"}
    )


def router_rejection() -> ReferralUpdateRejected:
    return ReferralUpdateRejected(
        envelope=new_envelope(ReferralUpdateRejected, producer_org_id=ROUTER, person_pseudonym="p-rejected"),
        referral_id=str(uuid.uuid4()),
        rejected_event_id=str(uuid.uuid4()),
        sender_org_id=PARTNER,
        attempted_status=ReferralStatus.COMPLETED,
        current_status=ReferralStatus.ACCEPTED,
        reason_code="not_allowed",
        detail="completed is not a step from accepted",
    )


def notifier_notice() -> NoticeIssued:
    """A notice as the notifier issues it, for a cadre's intake (Apec must be named)."""
    reference = load_reference()
    outputs = RouterHandlers(reference).on_intake(intake(cadre=True, person="p-notice"))
    [request] = [out.event for out in outputs if isinstance(out.event, NoticeRequested)]
    [issued] = [out.event for out in NotifierHandlers(reference).on_notice_requested(request)]
    assert isinstance(issued, NoticeIssued) and issued.envelope.producer_org_id == NOTIFIER
    return issued


def unverified_count(reason: str) -> float:
    value = REGISTRY.get_sample_value("cepbus_partner_unverified_total", {"reason": reason})
    return value or 0.0


def delivered(items: Sequence[object]) -> list[Delivery]:
    return [item for item in items if isinstance(item, Delivery)]


# -- what its author signed is delivered, with who signed it ----------------------------------------


@pytest.mark.parametrize("confluent", [False, True], ids=["single-object", "confluent"])
def test_a_referral_signed_by_the_operator_that_produced_it_is_delivered_with_its_author(
    confluent: bool,
) -> None:
    inbox, consumer = subscriber()
    event = operator_referral()
    consumer.records = [record(event, development_signer(OPERATOR), confluent=confluent)]
    [item] = inbox.poll()
    assert isinstance(item, Delivery) and item.event == event
    assert (item.author, item.key_id) == (OPERATOR, load_directory().current_key(OPERATOR).key_id)
    assert item.traceparent is not None and list(inbox.unverified) == []


def test_a_referral_the_router_derived_and_signed_is_delivered_as_the_routers() -> None:
    inbox, consumer = subscriber()
    event = router_referral()
    consumer.records = [record(event, development_signer(ROUTER))]
    [item] = delivered(inbox.poll())
    assert item.event == event and item.author == ROUTER
    assert item.key_id == development_signer(ROUTER).key_id  # the router's development key, listed
    assert load_directory().key_by_id(item.key_id) is not None


def test_the_routers_refusal_on_the_rejection_topic_is_delivered() -> None:
    inbox, consumer = subscriber()
    event = router_rejection()
    consumer.records = [record(event, development_signer(ROUTER), REJECTED)]
    [item] = delivered(inbox.poll())
    assert item.event == event and item.author == ROUTER and item.topic == REJECTED


def test_the_notifiers_notice_verifies_as_the_notifiers_but_is_not_an_inbox_event() -> None:
    """A partner's topics carry no notices: one signed by the notifier verifies (no `unverified`) and is
    handed over as a BadMessage of the wrong type; the same notice signed by an operator is not even
    that, it is set aside."""
    notice = notifier_notice()
    inbox, consumer = subscriber()
    consumer.records = [record(notice, development_signer(NOTIFIER))]
    [item] = inbox.poll()
    assert not isinstance(item, Delivery) and "NoticeIssued" in item.reason
    assert list(inbox.unverified) == []
    consumer.records = [record(notice, development_signer(OPERATOR), offset=1)]
    assert inbox.poll() == []
    assert [u.reason for u in inbox.unverified] == ["misattributed"]


def test_a_batch_signature_verifies_each_of_its_messages() -> None:
    inbox, consumer = subscriber()
    events = [operator_referral(), operator_referral()]
    values = [codec.encode(e) for e in events]
    signatures = development_signer(OPERATOR).sign(values)
    consumer.records = [
        Record(INBOX, i, value, [(SIGNATURE_HEADER, signature.header())])
        for i, (value, signature) in enumerate(zip(values, signatures, strict=True))
    ]
    assert [d.event for d in delivered(inbox.poll())] == events


# -- what its author did not sign is never delivered ------------------------------------------------


def forgeries() -> list[tuple[str, Record]]:
    """The attacks on the reading side, each with the reason it must be set aside for."""
    genuine = operator_referral()
    producer_key = load_directory().current_key(OPERATOR).key_id
    tampered = replace(
        record(genuine, development_signer(OPERATOR)),
        value=codec.encode(genuine.model_copy(update={"reason": "tampered after signing"})),
    )
    good = development_signer(OPERATOR).sign([codec.encode(genuine)])[0]
    return [
        ("unsigned", record(operator_referral(), None)),
        # another organisation's genuine key, over an event produced in the operator's name
        ("misattributed", record(operator_referral(), development_signer(OTHER))),
        # the producer's key id, over a signature by another key
        (
            "bad_signature",
            record(operator_referral(), StatementSigner(OPERATOR, producer_key, dev_private_key(OTHER))),
        ),
        # produced as the router, signed with an operator's genuine key
        ("misattributed", record(router_referral(), development_signer(OPERATOR))),
        # a key the directory does not list (the operator's id, a key of its own making)
        (
            "unknown_key",
            record(
                operator_referral(), StatementSigner(OPERATOR, "0123456789abcdef", dev_private_key(OPERATOR))
            ),
        ),
        # the bytes changed after they were signed
        ("bad_signature", tampered),
        ("malformed_signature", record(operator_referral(), None, header=b'{"v":1,"key":"nope"}')),
        # a genuine signature of another statement, moved onto this one
        ("bad_signature", record(operator_referral(), None, header=good.header())),
    ]


def test_every_forgery_is_set_aside_with_the_buss_reason_and_never_delivered() -> None:
    seen: list[Unverified] = []
    inbox, consumer = subscriber(on_unverified=seen.append)
    cases = forgeries()
    consumer.records = [replace(r, offset=i) for i, (_, r) in enumerate(cases)]
    before = {reason: unverified_count(reason) for reason, _ in cases}
    with structlog.testing.capture_logs() as logs:
        assert inbox.poll() == []
    expected = [reason for reason, _ in cases]
    assert [u.reason for u in seen] == expected
    assert list(inbox.unverified) == seen
    assert [u.offset for u in seen] == list(range(len(cases)))
    assert all(u.topic == INBOX and u.org_id == PARTNER and u.detail for u in seen)
    lines = [line for line in logs if line["event"] == "partner_unverified"]
    assert [line["reason"] for line in lines] == expected
    assert all(line["log_level"] == "warning" for line in lines)
    for reason in set(expected):
        assert unverified_count(reason) - before[reason] == expected.count(reason), reason


def test_a_forgery_among_genuine_messages_takes_nothing_else_with_it() -> None:
    inbox, consumer = subscriber()
    genuine = operator_referral()
    consumer.records = [
        record(operator_referral(), None, offset=0),
        record(genuine, development_signer(OPERATOR), offset=1),
        record(router_referral(), development_signer(OPERATOR), offset=2),
    ]
    assert [(d.offset, d.event) for d in delivered(inbox.poll())] == [(1, genuine)]
    assert [(u.offset, u.reason) for u in inbox.unverified] == [(0, "unsigned"), (2, "misattributed")]


def test_a_rejection_posing_as_the_routers_is_set_aside() -> None:
    inbox, consumer = subscriber()
    consumer.records = [record(router_rejection(), development_signer(OTHER), REJECTED)]
    assert inbox.poll() == []
    [unverified] = inbox.unverified
    assert (unverified.reason, unverified.producer_org_id, unverified.topic) == (
        "misattributed",
        ROUTER,
        REJECTED,
    )


def test_a_genuine_event_copied_into_another_organisations_topic_is_not_believed_there() -> None:
    """The router passes a referral on with its author's signature, which verifies anywhere: one for
    cap-emploi-r84 found in apec-r84's inbox, or a refusal of cap-emploi-r84's update on apec-r84's
    rejection topic, is not apec-r84's."""
    inbox, consumer = subscriber()
    elsewhere = operator_referral().model_copy(update={"recipient_org_id": OTHER})
    not_mine = router_rejection().model_copy(update={"sender_org_id": OTHER})
    consumer.records = [
        record(elsewhere, development_signer(OPERATOR)),
        record(not_mine, development_signer(ROUTER), REJECTED),
    ]
    assert inbox.poll() == []
    assert [u.reason for u in inbox.unverified] == ["wrong_recipient", "wrong_recipient"]


def test_a_key_is_checked_at_the_time_of_reading() -> None:
    """Every packaged key may sign from 2020-01-01: read on a clock before that, a genuine signature is
    a key that may not sign (as a revoked or expired key is, read after its end)."""
    directory = load_directory()
    early = Authorship(
        directory,
        ProducerCatalog.build(load_reference(), directory),
        clock=lambda: datetime(2019, 6, 1, tzinfo=UTC),
    )
    inbox, consumer = subscriber(authorship=early)
    consumer.records = [record(operator_referral(), development_signer(OPERATOR))]
    assert inbox.poll() == []
    assert [u.reason for u in inbox.unverified] == ["key_not_valid"]


def test_the_header_is_the_one_verified_not_an_in_body_claim() -> None:
    """Sanity of the attack fixtures: the forged headers parse (they are refused for what they claim,
    not for being garbage), except the one meant to be malformed."""
    for reason, forged in forgeries():
        header = dict(forged.headers).get(SIGNATURE_HEADER)
        if reason in ("unsigned", "malformed_signature"):
            continue
        assert header is not None and StatementSignature.parse(header).size == 1
