"""The partner SDK (kafka-python): read your organisation's referral inbox and the router's refusals
of your updates, and send signed status updates.

    from cepbus.sdk.partner import PartnerClient, Subscriber
    with Subscriber("transitions-pro-r84") as inbox, PartnerClient("transitions-pro-r84", key) as me:
        for delivery in inbox.poll(timeout_s=1.0):
            if isinstance(delivery.event, ReferralRequested):
                me.send(me.update(delivery.event, ReferralStatus.RECEIVED))
        inbox.commit()

A `Subscriber` reads only the topics of the organisations it is given (their inbox and rejection
topics: `cep.referral.inbox.<org>` and `cep.referral.rejected.<org>`), from the offsets committed
for its consumer group. A message that is not a valid event of the topic is handed over as a
`BadMessage` with the reason, never skipped silently.

A `Subscriber` hands over only what its author signed. Every message's statement signature (the
`cepbus-signature` header, `cepbus.contract.statements`) is verified with the directory key its header
names, valid when the message is read, and the key's organisation must be the event's
`envelope.producer_org_id` (`cepbus.reference.authorship`): the router passes a referral on unchanged,
with its author's signature (the requesting organisation's, or the router's own when it derived the
referral from a person's choice), and signs the refusals it writes. The event must also be addressed to
the organisation whose topic it is on (a referral's `recipient_org_id`, a refusal's `sender_org_id`), so
that a genuine event copied into another organisation's topic is not believed there. A message that
fails is never delivered: it is logged (`partner_unverified`, with the reason), counted
(`cepbus_partner_unverified_total{reason}`), kept in `Subscriber.unverified` (the latest ones) and
passed to `on_unverified` if given. The reasons are the bus's dead-letter reasons: `unsigned`,
`malformed_signature`, `unknown_key`, `key_not_valid`, `bad_signature`, `misattributed`, and
`wrong_recipient` for an event addressed to another organisation.

What a `PartnerClient` sends is signed as every event on the bus is: a statement signature by the
organisation's directory key in the `cepbus-signature` header (`cepbus.contract.statements`), made when
it is sent; the update itself carries no signature (its old `signer_org_id` and `signature` fields are
superseded and stay empty).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaConsumer, TopicPartition
from kafka.producer.future import RecordMetadata
from prometheus_client import Counter

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER, TRACEPARENT_HEADER
from cepbus.contract.models import (
    Event,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.topics import core_topic, referral_inbox, referral_rejections
from cepbus.reference import load_reference
from cepbus.reference.authorship import Author, Authorship, AuthorshipError
from cepbus.reference.directory import Directory, load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from cepbus.runtime.logs import get_logger
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import principal_of_org
from cepbus.sdk.publisher import Publisher, signer_of

PARTNER_UNVERIFIED = Counter(
    "cepbus_partner_unverified_total",
    "Messages a partner's Subscriber set aside, never delivered: their author's signature did not hold",
    ["reason"],
)

log = get_logger()

#: How many of the latest messages set aside `Subscriber.unverified` keeps (the counter counts them all).
KEEP_UNVERIFIED = 1000


@dataclass(frozen=True)
class Delivery:
    """A typed event from one of the organisation's topics, verified: `author` is the organisation whose
    directory key signed it (its `envelope.producer_org_id`), `key_id` that key's id."""

    org_id: str
    topic: str
    offset: int
    event: ReferralRequested | ReferralUpdateRejected
    traceparent: str | None = None  # the W3C trace it came in: answer within it (PartnerClient.send)
    author: str | None = None  # set by `Subscriber.poll`, which delivers nothing unverified
    key_id: str | None = None


@dataclass(frozen=True)
class BadMessage:
    """A message that could not be read as the topic's event, with the reason."""

    org_id: str
    topic: str
    offset: int
    reason: str


@dataclass(frozen=True)
class Unverified:
    """A message of the organisation's topics that was not its author's word, never delivered: `reason`
    is the bus's (`unsigned`, `malformed_signature`, `unknown_key`, `key_not_valid`, `bad_signature`,
    `misattributed`, `wrong_recipient`), `detail` says more. The event's claims (`event_type`,
    `event_id`, `producer_org_id`) are what the message says, unproven."""

    org_id: str
    topic: str
    offset: int
    event_type: str
    event_id: str
    producer_org_id: str
    reason: str
    detail: str


def _header(headers: Iterable[tuple[str, bytes]] | None, wanted: str) -> bytes | None:
    for name, value in headers or ():
        if name == wanted:
            return bytes(value) if value is not None else None
    return None


def _traceparent(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    value = _header(headers, TRACEPARENT_HEADER)
    return None if value is None else value.decode(errors="replace")


def _addressee(event: ReferralRequested | ReferralUpdateRejected) -> str:
    """The organisation an event of a per-organisation topic is for."""
    return event.recipient_org_id if isinstance(event, ReferralRequested) else event.sender_org_id


class Subscriber:
    def __init__(
        self,
        org_ids: str | Sequence[str],
        settings: BrokerSettings | None = None,
        *,
        group_id: str | None = None,
        directory: Directory | None = None,
        requests: KafkaRequests | None = None,
        authorship: Authorship | None = None,
        on_unverified: Callable[[Unverified], None] | None = None,
        consumer: Any | None = None,
    ) -> None:
        """`directory`: the signed directory whose keys what is read is verified with (default: the
        configured one, `load_directory()`); `authorship`: the verifier itself (default: one on that
        directory, checking keys at the time of reading). `on_unverified`: called with each message set
        aside (also kept in `unverified`). `requests`: a record of the Kafka requests made, as the
        organisation's KafkaUser (the ACL test attaches one); none by default. `consumer`: a
        KafkaConsumer-like object (tests pass a fake); else one of its own."""
        ids = [org_ids] if isinstance(org_ids, str) else list(org_ids)
        if not ids:
            raise ValueError("a Subscriber needs at least one organisation")
        directory = directory or (authorship.directory if authorship is not None else load_directory())
        for org_id in ids:
            directory.get(org_id)  # DirectoryError for an unknown organisation
        self.authorship = authorship or Authorship(
            directory, ProducerCatalog.build(load_reference(), directory)
        )
        self.on_unverified = on_unverified
        self.unverified: deque[Unverified] = deque(maxlen=KEEP_UNVERIFIED)  # the latest set aside
        self.org_ids = ids
        self.settings = settings or BrokerSettings()
        self.requests: KafkaRequests = requests or NotRecorded()
        Framing.from_settings(self.settings)  # a configured schema registry resolves Confluent ids
        self._owner: dict[str, str] = {}
        self._expected: dict[str, type[ReferralRequested] | type[ReferralUpdateRejected]] = {}
        for org_id in ids:
            self._owner[referral_inbox(org_id).name] = org_id
            self._expected[referral_inbox(org_id).name] = ReferralRequested
            self._owner[referral_rejections(org_id).name] = org_id
            self._expected[referral_rejections(org_id).name] = ReferralUpdateRejected
        self._consumer = consumer or KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_list,
            group_id=group_id or f"cepbus-partner-{ids[0]}",
            client_id=f"cepbus-partner-{ids[0]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            request_timeout_ms=int(self.settings.request_timeout_s * 1000) + 5000,
            **kafka_python_security(self.settings),
        )
        # Inbox and rejection topics have one partition each (cepbus.contract.topics): assignment needs
        # no group join.
        self._consumer.assign([TopicPartition(topic, 0) for topic in sorted(self._owner)])
        self._group = group_id or f"cepbus-partner-{ids[0]}"
        for topic, owner in self._owner.items():
            self.requests.record(principal_of_org(owner), "Read", "topic", topic)

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Delivery | BadMessage]:
        """The next messages of the organisation's topics, decoded, typed and verified (their author's
        signature, the author their producer): only those are delivered. A message that is not an event
        of the topic is a `BadMessage`; one whose signature does not hold is set aside (`unverified`)."""
        batches: dict[Any, list[Any]] = self._consumer.poll(
            timeout_ms=int(timeout_s * 1000), max_records=max_records
        )
        out: list[Delivery | BadMessage] = []
        for records in batches.values():
            for record in records:
                org_id = self._owner[record.topic]
                try:
                    event = codec.decode(record.value)
                except codec.DecodeError as exc:
                    out.append(BadMessage(org_id, record.topic, record.offset, str(exc)))
                    continue
                try:
                    author = self._verify(record, event)
                except AuthorshipError as exc:
                    self._set_aside(org_id, record, event, exc)
                    continue
                expected = self._expected[record.topic]
                if not isinstance(event, expected):
                    reason = f"{event.avro_name} on {record.topic}, which carries {expected.avro_name}"
                    out.append(BadMessage(org_id, record.topic, record.offset, reason))
                    continue
                if _addressee(event) != org_id:
                    wrong = AuthorshipError(
                        "wrong_recipient", f"{event.avro_name} for {_addressee(event)} on {record.topic}"
                    )
                    self._set_aside(org_id, record, event, wrong)
                    continue
                traceparent = _traceparent(record.headers)
                out.append(
                    Delivery(
                        org_id, record.topic, record.offset, event, traceparent, author.org_id, author.key_id
                    )
                )
        return out

    def _verify(self, record: Any, event: Event) -> Author:
        """The event's author, verified with the directory key its header names (valid now) over the
        message's own bytes, and held to be its producer; AuthorshipError otherwise."""
        header = _header(record.headers, SIGNATURE_HEADER)
        author = self.authorship.verify(codec.single_object(record.value), header)
        self.authorship.judge(event, author, core_topic(record.topic))  # a per-organisation topic: None
        return author

    def _set_aside(self, org_id: str, record: Any, event: Event, exc: AuthorshipError) -> None:
        unverified = Unverified(
            org_id,
            record.topic,
            record.offset,
            event.avro_name,
            str(event.envelope.event_id),
            event.envelope.producer_org_id,
            exc.reason,
            exc.detail,
        )
        PARTNER_UNVERIFIED.labels(exc.reason).inc()
        log.warning(
            "partner_unverified",
            org_id=org_id,
            topic=record.topic,
            offset=record.offset,
            event_type=unverified.event_type,
            event_id=unverified.event_id,
            reason=exc.reason,
            detail=exc.detail,
        )
        self.unverified.append(unverified)
        if self.on_unverified is not None:
            self.on_unverified(unverified)

    def commit(self) -> None:
        """Commit what `poll` returned: call it once those events are handled (at least once)."""
        self.requests.record(principal_of_org(self.org_ids[0]), "Read", "group", self._group)
        self._consumer.commit()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PartnerClient:
    """Builds status updates as the organisation and publishes them, each signed with its key (the
    statement signature of `cepbus.contract.statements`, one per batch sent)."""

    def __init__(
        self,
        org_id: str,
        key: Ed25519PrivateKey,
        settings: BrokerSettings | None = None,
        *,
        publisher: Publisher | None = None,
        requests: KafkaRequests | None = None,
    ) -> None:
        """`publisher`: shared with other clients; else one of its own (`requests`, if given, records
        its Kafka requests)."""
        self.org_id = org_id
        self._signer = signer_of(org_id, key)  # signs every update it sends (cepbus.contract.statements)
        self._publisher = publisher or Publisher(
            settings, client_id=f"cepbus-partner-{org_id}", requests=requests, signer=self._signer
        )

    def update(
        self,
        referral: ReferralRequested,
        status: ReferralStatus,
        *,
        reason_code: str | None = None,
        note: str | None = None,
        event_id: uuid.UUID | None = None,
        attempt: int = 1,
    ) -> ReferralStatusChanged:
        """An update of `referral`, to `send` (which signs it). By default its id is derived from
        (referral, organisation, status, attempt), so re-sending the same step after a crash is
        recognised as the same update; a step taken again on purpose (a second booking after a no-show)
        is `attempt=2`, a new update. The in-body `signer_org_id` and `signature` stay empty: the
        statement signature made by `send` covers the update's exact bytes instead."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        purpose = f"status:{self.org_id}:{status.value}" + (f":{attempt}" if attempt > 1 else "")
        envelope = new_envelope(
            ReferralStatusChanged,
            producer_org_id=self.org_id,
            causation=referral.envelope,
            event_id=event_id or derived_event_id(referral.referral_id, purpose),
        )
        return ReferralStatusChanged(
            envelope=envelope,
            referral_id=referral.referral_id,
            status=status,
            actor_org_id=self.org_id,
            reason_code=reason_code,
            note=note,
        )

    def send(self, *updates: ReferralStatusChanged, traceparent: str | None = None) -> list[RecordMetadata]:
        """Sign (one statement signature over all of them) and publish on `cep.referral.status`, keyed
        by person; returns once the broker has acknowledged. `traceparent`: the trace to answer in (a
        `Delivery`'s), else a new one."""
        return self._publisher.publish_many(updates, traceparent=traceparent, signer=self._signer)

    def close(self) -> None:
        self._publisher.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = [
    "BadMessage",
    "Delivery",
    "PartnerClient",
    "Subscriber",
    "Unverified",
]  # what a partner's IS imports
