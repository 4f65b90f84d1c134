"""The wiring: which topics each principal of the bus reads and writes, and its consumer groups.

One declaration for three uses: the services' drivers refuse to subscribe to or produce on a topic
their principal does not declare (so the declaration cannot drift from what runs), the Kafka ACLs of
`deploy/k8s` are generated from it (`cepbus_app/k8s.py`), and `cep-bus topics --wiring --json` prints
it. A name ending in `*` is a prefix (Kafka's PREFIXED pattern), anything else a literal topic.

Writes follow the catalog's `writers` (`cepbus.contract.topics`): a principal writes every topic whose
writers include its producer kind. Reads are declared here, per principal, least privilege: a partner
reads only its own inbox and rejection topic; nobody but the router, the ledger (and ops, who replay
dead letters) reads `cep.intake.registered`; nobody but the dead-letter archive and ops reads
`cep.deadletter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cepbus.contract.topics import (
    CHOICE_RECORDED,
    CORE_TOPICS,
    DEAD_LETTER,
    INBOX_PREFIX,
    INTAKE_REGISTERED,
    LEDGER_CHECKPOINTS,
    LEDGER_TOPICS,
    NOTICE_INBOX_PREFIX,
    NOTICE_ISSUED,
    NOTICE_REQUESTED,
    REFERRAL_EXPIRED,
    REFERRAL_REMINDER,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
    REFERRAL_VERDICT,
    REJECTIONS_PREFIX,
    SERVICE_LEVEL_STARTED,
    ProducerKind,
    notice_inbox,
    referral_inbox,
    referral_rejections,
)

#: The organisation a templated principal stands for (`partner-{org}`, `operator-{org}`).
ORG = "{org}"


class WiringViolation(RuntimeError):
    """A process reached for a topic its principal does not declare: a bug, refused before the broker."""


@dataclass(frozen=True)
class Access:
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    groups: tuple[str, ...]

    @staticmethod
    def _matches(patterns: Iterable[str], name: str) -> bool:
        return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)

    def may_read(self, topic: str) -> bool:
        return self._matches(self.reads, topic)

    def may_write(self, topic: str) -> bool:
        return self._matches(self.writes, topic)

    def may_join(self, group: str) -> bool:
        return self._matches(self.groups, group)

    def for_org(self, org_id: str) -> Access:
        """A templated principal's access for one organisation."""
        return Access(
            tuple(p.replace(ORG, org_id) for p in self.reads),
            tuple(p.replace(ORG, org_id) for p in self.writes),
            tuple(p.replace(ORG, org_id) for p in self.groups),
        )

    def as_json(self) -> dict[str, list[str]]:
        return {"reads": list(self.reads), "writes": list(self.writes), "groups": list(self.groups)}


def _written_by(kind: ProducerKind) -> tuple[str, ...]:
    return tuple(spec.name for spec in CORE_TOPICS if kind in spec.writers)


_ROUTER_READS = (
    INTAKE_REGISTERED,
    NOTICE_ISSUED,
    CHOICE_RECORDED,
    SERVICE_LEVEL_STARTED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
)
_SERVICE_READS = {
    "router": tuple(spec.name for spec in _ROUTER_READS),
    "notifier": (NOTICE_REQUESTED.name,),
    "ledger": tuple(spec.name for spec in LEDGER_TOPICS),
    "deadletters": (DEAD_LETTER.name,),
    # the mailer (services/mailer): the referrals in every organisation's inbox, and the router's verdicts
    "mailer": (f"{INBOX_PREFIX}*", REFERRAL_VERDICT.name, REFERRAL_REMINDER.name, REFERRAL_EXPIRED.name),
}
#: Consumed by some service: where `cep-bus deadletters replay` may send an original back to. Not an
#: organisation's inbox (a prefix): only the router writes there, ops replays nothing into one.
CONSUMED = tuple(
    sorted(
        {name for reads in _SERVICE_READS.values() for name in reads if not name.endswith("*")}
        - {DEAD_LETTER.name}
    )
)

SERVICES: Mapping[str, Access] = {
    "router": Access(
        _SERVICE_READS["router"],
        (
            *_written_by(ProducerKind.ROUTER),
            f"{INBOX_PREFIX}*",
            f"{REJECTIONS_PREFIX}*",
            f"{NOTICE_INBOX_PREFIX}*",
        ),
        ("cepbus-router*",),
    ),
    "notifier": Access(_SERVICE_READS["notifier"], _written_by(ProducerKind.NOTIFIER), ("cepbus-notifier*",)),
    "ledger": Access(_SERVICE_READS["ledger"], _written_by(ProducerKind.LEDGER), ("cepbus-ledger*",)),
    # the dead-letter archive derives nothing; it writes only the dead letter of a message on
    # cep.deadletter it cannot read, as every service does, or such a message would block it for good
    "deadletters": Access(_SERVICE_READS["deadletters"], (DEAD_LETTER.name,), ("cepbus-deadletters*",)),
    # the mailer sends emails, not events: it writes only the dead letters of what it cannot read
    "mailer": Access(_SERVICE_READS["mailer"], (DEAD_LETTER.name,), ("cepbus-mailer*",)),
}

#: The roles outside the bus's own processes; `{org}` stands for each organisation of the directory.
EXTERNAL: Mapping[str, Access] = {
    # an operator's information system publishes intakes, choices, service levels, its own referrals
    # and status updates; it receives the notices of its own intakes, and referrals (and refusals) like
    # any organisation of the directory
    f"operator-{ORG}": Access(
        (notice_inbox(ORG).name, referral_inbox(ORG).name, referral_rejections(ORG).name),
        _written_by(ProducerKind.OPERATOR),
        (f"cepbus-operator-{ORG}*", f"cepbus-partner-{ORG}*"),
    ),
    # a local partner: its inbox and its refusals, and the status updates it signs
    f"partner-{ORG}": Access(
        (referral_inbox(ORG).name, referral_rejections(ORG).name),
        _written_by(ProducerKind.PARTNER),
        (f"cepbus-partner-{ORG}*",),
    ),
    # the partner inbox (services/inbox, a web application, not a stream service): it publishes the
    # status updates partners sign in their browser and reads nothing from Kafka (the read side is
    # HTTP). It cannot forge an organisation's update: the router verifies every signature.
    "cepbus-inbox": Access((), (REFERRAL_STATUS.name,), ()),
    # operations: read the dead letters, replay an original to the topic it came from
    "cepbus-ops": Access((DEAD_LETTER.name,), CONSUMED, ("cepbus-ops*",)),
    # the regulator's auditors: the signed checkpoints (bundles are verified offline)
    "cepbus-auditor": Access((LEDGER_CHECKPOINTS.name,), (), ("cepbus-auditor*",)),
}


def service_access(service: str) -> Access:
    try:
        return SERVICES[service]
    except KeyError:
        raise WiringViolation(f"no wiring declared for service {service!r}") from None


def check_reads(service: str, topics: Iterable[str]) -> None:
    """Refuse a route table that reads a topic the service's principal does not declare."""
    access = service_access(service)
    undeclared = sorted(t for t in topics if not access.may_read(t))
    if undeclared:
        raise WiringViolation(f"{service} reads {undeclared}, not in its wiring (cepbus/contract/wiring.py)")


def check_writes(service: str, topics: Iterable[str]) -> None:
    """Refuse to produce on a topic the service's principal does not declare."""
    access = service_access(service)
    undeclared = sorted({t for t in topics if not access.may_write(t)})
    if undeclared:
        raise WiringViolation(f"{service} writes {undeclared}, not in its wiring (cepbus/contract/wiring.py)")


def wiring() -> dict[str, dict[str, list[str]]]:
    """`cep-bus topics --wiring --json`: every principal, services first."""
    return {name: access.as_json() for name, access in {**SERVICES, **EXTERNAL}.items()}


__all__ = [
    "CONSUMED",
    "EXTERNAL",
    "ORG",
    "SERVICES",
    "Access",
    "WiringViolation",
    "check_reads",
    "check_writes",
    "service_access",
    "wiring",
]
