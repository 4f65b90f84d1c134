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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaConsumer, TopicPartition
from kafka.producer.future import RecordMetadata

from cepbus.contract import codec
from cepbus.contract.headers import TRACEPARENT_HEADER
from cepbus.contract.models import (
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.signatures import sign_status
from cepbus.contract.topics import referral_inbox, referral_rejections
from cepbus.reference.directory import Directory, load_directory
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import principal_of_org
from cepbus.sdk.publisher import Publisher


@dataclass(frozen=True)
class Delivery:
    """A typed event from one of the organisation's topics."""

    org_id: str
    topic: str
    offset: int
    event: ReferralRequested | ReferralUpdateRejected
    traceparent: str | None = None  # the W3C trace it came in: answer within it (PartnerClient.send)


@dataclass(frozen=True)
class BadMessage:
    """A message that could not be read as the topic's event, with the reason."""

    org_id: str
    topic: str
    offset: int
    reason: str


def _traceparent(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == TRACEPARENT_HEADER:
            return value.decode(errors="replace")
    return None


class Subscriber:
    def __init__(
        self,
        org_ids: str | Sequence[str],
        settings: BrokerSettings | None = None,
        *,
        group_id: str | None = None,
        directory: Directory | None = None,
        requests: KafkaRequests | None = None,
    ) -> None:
        """`requests`: a record of the Kafka requests made, as the organisation's KafkaUser (the ACL test
        attaches one); none by default."""
        ids = [org_ids] if isinstance(org_ids, str) else list(org_ids)
        if not ids:
            raise ValueError("a Subscriber needs at least one organisation")
        directory = directory or load_directory()
        for org_id in ids:
            directory.get(org_id)  # DirectoryError for an unknown organisation
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
        self._consumer = KafkaConsumer(
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
        """The next messages of the organisation's topics, decoded and typed."""
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
                expected = self._expected[record.topic]
                if not isinstance(event, expected):
                    reason = f"{event.avro_name} on {record.topic}, which carries {expected.avro_name}"
                    out.append(BadMessage(org_id, record.topic, record.offset, reason))
                    continue
                out.append(Delivery(org_id, record.topic, record.offset, event, _traceparent(record.headers)))
        return out

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
    """Builds status updates as the organisation, signs them with its key, publishes them."""

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
        self._key = key
        self._publisher = publisher or Publisher(
            settings, client_id=f"cepbus-partner-{org_id}", requests=requests
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
        """A signed update of `referral`. By default its id is derived from (referral, organisation,
        status, attempt), so re-sending the same step after a crash is recognised as the same update;
        a step taken again on purpose (a second booking after a no-show) is `attempt=2`, a new update."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        purpose = f"status:{self.org_id}:{status.value}" + (f":{attempt}" if attempt > 1 else "")
        envelope = new_envelope(
            ReferralStatusChanged,
            producer_org_id=self.org_id,
            causation=referral.envelope,
            event_id=event_id or derived_event_id(referral.referral_id, purpose),
        )
        update = ReferralStatusChanged(
            envelope=envelope,
            referral_id=referral.referral_id,
            status=status,
            actor_org_id=self.org_id,
            reason_code=reason_code,
            note=note,
        )
        return sign_status(update, self.org_id, self._key)

    def send(self, *updates: ReferralStatusChanged, traceparent: str | None = None) -> list[RecordMetadata]:
        """Publish on `cep.referral.status`, keyed by person; returns once the broker has acknowledged.
        `traceparent`: the trace to answer in (a `Delivery`'s), else a new one."""
        return self._publisher.publish_many(updates, traceparent=traceparent)

    def close(self) -> None:
        self._publisher.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["BadMessage", "Delivery", "PartnerClient", "Subscriber"]  # what a partner's IS imports
