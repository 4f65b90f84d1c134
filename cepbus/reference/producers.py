"""Who may have produced an event: the producer kind of an organisation id, and whether an event's
claims agree with its producer and its topic.

The ledger appends an event only when (1) its type is the topic's payload, (2) its producer is of a
kind the topic's `writers` allow (`cepbus.contract.topics`), and (3) what it says about who acted
agrees with who produced it: an operator publishes its own intakes, choices and service levels, an
organisation sends referrals as their requester. The Kafka ACLs make the topic a proof of which
principal wrote (`docs/threat-model.md`); these checks keep one principal from speaking for another
inside a topic it may write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cepbus.contract.models import Event
from cepbus.contract.topics import ProducerKind, TopicSpec
from cepbus.reference import ReferenceData
from cepbus.reference.directory import Directory

#: The organisation ids the services produce as by default (their settings may change them).
DEFAULT_SERVICE_PRODUCERS: Mapping[str, ProducerKind] = {
    "cep-bus-router": ProducerKind.ROUTER,
    "cep-bus-notifier": ProducerKind.NOTIFIER,
    "cep-bus-ledger": ProducerKind.LEDGER,
    "cep-bus-deadletters": ProducerKind.DEADLETTERS,
}

#: Fields naming the organisation an event speaks for, when an organisation (not a service) sends it.
_ACTING_FIELDS = ("operator_id", "requester_org_id", "actor_org_id")


@dataclass(frozen=True)
class ClaimProblem:
    reason: str  # short and stable: a metrics label
    detail: str


class ProducerCatalog:
    def __init__(self, kinds: Mapping[str, ProducerKind]) -> None:
        self._kinds = dict(kinds)

    @classmethod
    def build(
        cls,
        reference: ReferenceData,
        directory: Directory,
        services: Mapping[str, ProducerKind] | None = None,
    ) -> ProducerCatalog:
        """Organisations by the reference and the directory; the bus's services by the directory's
        `services` (their roles), `services` (a service's settings) and the defaults."""
        kinds: dict[str, ProducerKind] = {}
        operators = {org.org_id for org in reference.organisations()}
        for org_id in directory.org_ids():
            kinds[org_id] = ProducerKind.OPERATOR if org_id in operators else ProducerKind.PARTNER
        for org_id in operators:
            kinds[org_id] = ProducerKind.OPERATOR
        kinds.update(DEFAULT_SERVICE_PRODUCERS)
        kinds.update((org_id, ProducerKind(entry.role)) for org_id, entry in directory.services.items())
        kinds.update(services or {})
        return cls(kinds)

    def kind_of(self, org_id: str) -> ProducerKind | None:
        return self._kinds.get(org_id)

    def judge(self, event: Event, topic: TopicSpec) -> ClaimProblem | None:
        """None when `event` may be recorded as sent on `topic`; else why not."""
        if type(event) is not topic.payload:
            return ClaimProblem(
                "not_allowed_on_topic",
                f"{event.avro_name} on {topic.name}, which carries {topic.payload.avro_name}",
            )
        producer = event.envelope.producer_org_id
        kind = self.kind_of(producer)
        if kind is None or kind not in topic.writers:
            allowed = ", ".join(sorted(topic.writers))
            return ClaimProblem(
                "producer_not_allowed",
                f"{producer} ({kind or 'unknown'}) may not write {topic.name} ({allowed})",
            )
        if kind in (ProducerKind.OPERATOR, ProducerKind.PARTNER):
            for name in _ACTING_FIELDS:
                acting = getattr(event, name, None)
                if acting is not None and acting != producer:
                    return ClaimProblem(
                        "claim_mismatch", f"{name} is {acting} but {producer} produced the event"
                    )
        return None


__all__ = ["DEFAULT_SERVICE_PRODUCERS", "ClaimProblem", "ProducerCatalog"]
