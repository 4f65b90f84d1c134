"""A service as the runtime runs it: its route table (topic -> handler), its timers and its start and
stop hooks. No broker here: a service builds a `ServiceDefinition` from plain functions, and a stream
driver (`cepbus.runtime.faust_driver`) runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cepbus.contract.models import Event
from cepbus.contract.statements import StatementSigner
from cepbus.contract.topics import TopicSpec
from cepbus.reference.authorship import Authorship
from cepbus.runtime.messages import BatchHandler, Handler, Outgoing, Transaction
from cepbus.runtime.outbox import Outbox
from cepbus.runtime.settings import ServiceSettings
from cepbus.runtime.silence import SilenceSeed
from cepbus.trust.modes import TrustProblem


@dataclass(frozen=True)
class Route:
    """One line of a route table: events of `topics` (of type `accepts`) go to `handler`.

    A per-event handler runs on each event of a batch, inside `transaction` when given; a refusal or a
    bug dead-letters that event, an unavailable database makes the runtime retry the batch (never acked
    meanwhile). With an `outbox` (in the same database as the transaction), the outputs are stored with
    the state and relayed from there. A batch handler (`whole_batch=True`) gets every decoded event of the
    batch in one call; should it raise, the batch is retried and never acked."""

    name: str
    topics: tuple[TopicSpec, ...]
    accepts: type[Event]
    handler: Handler[Any] | BatchHandler
    transaction: Transaction | None = None
    whole_batch: bool = False
    outbox: Outbox | None = None
    batch_max: int | None = None  # None: the runtime's default (`StreamSettings`)
    batch_within_ms: float | None = None


def route(
    spec: TopicSpec,
    handler: Handler[Any],
    transaction: Transaction | None = None,
    *,
    outbox: Outbox | None = None,
    name: str | None = None,
) -> Route:
    """The route of one topic to a per-event handler taking the topic's payload type."""
    return Route(name or spec.name, (spec,), spec.payload, handler, transaction, outbox=outbox)


def batch_route(
    name: str,
    specs: Sequence[TopicSpec],
    handler: BatchHandler,
    *,
    accepts: type[Event] = Event,
    batch_max: int | None = None,
    batch_within_ms: float | None = None,
) -> Route:
    """The route of several topics to one batch handler."""
    return Route(
        name, tuple(specs), accepts, handler, None, True, batch_max=batch_max, batch_within_ms=batch_within_ms
    )


@dataclass(frozen=True)
class Timer:
    """Every `interval_s`, `tick` decides events to send. With an `outbox`, the tick runs inside
    `transaction` and its events are stored with what it recorded, then relayed; without, `sent` is told
    once they are acknowledged."""

    name: str
    interval_s: float
    tick: Callable[[], Sequence[Outgoing]]
    sent: Callable[[Sequence[Outgoing]], None] | None = None
    transaction: Transaction | None = None
    outbox: Outbox | None = None


@dataclass
class ServiceDefinition:
    """Everything the runtime needs to run a service."""

    name: str
    settings: ServiceSettings
    routes: list[Route]
    timers: list[Timer] = field(default_factory=list)
    on_start: list[Callable[[], None]] = field(default_factory=list)  # e.g. an HTTP read side
    on_stop: list[Callable[[], None]] = field(default_factory=list)  # e.g. closing stores
    # Development trust material it runs on: refused in production, logged loudly in development.
    trust_problems: list[TrustProblem] = field(default_factory=list)
    # When each organisation was last heard of, from the service's stores: the silence gauges start from
    # there instead of from zero at every restart (a 30-day silence outlives deployments).
    silence_seed: Callable[[], SilenceSeed] | None = None  # what the stores remember (silence.py)
    # Its key, which signs everything it sends, and its judge of who said what in everything it reads
    # (cepbus.runtime.identity): every service has both; None only in unit tests of the runtime.
    signer: StatementSigner | None = None
    authorship: Authorship | None = None

    @property
    def producer_org_id(self) -> str:
        return self.settings.service_org_id

    def outboxes(self) -> list[Outbox]:
        """Every outbox of the service, once each."""
        found: list[Outbox] = []
        for outbox in [*(r.outbox for r in self.routes), *(t.outbox for t in self.timers)]:
            if outbox is not None and all(outbox is not o for o in found):
                found.append(outbox)
        return found

    def topics_read(self) -> list[str]:
        return sorted({spec.name for r in self.routes for spec in r.topics})

    def route_table(self) -> list[tuple[str, str, str]]:
        """(topic, event type, handler) rows: where each event goes, in one place."""
        rows = []
        for r in self.routes:
            name = getattr(r.handler, "__qualname__", type(r.handler).__name__)
            for spec in r.topics:
                rows.append((spec.name, r.accepts.__name__, name))
        return rows


__all__ = ["Route", "ServiceDefinition", "Timer", "batch_route", "route"]
