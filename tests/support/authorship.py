"""Events as the runtime admits them: signed by their author's statement key (the development keys the
packaged directory lists) and verified at the edge by `cepbus.reference.authorship`, for tests that call
a handler directly, without a runtime in front of it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import Event, ReferralStatusChanged
from cepbus.contract.statements import StatementSigner
from cepbus.contract.topics import core_topic, topic_for
from cepbus.reference import load_reference
from cepbus.reference.authorship import Author, Authorship
from cepbus.reference.directory import load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.messages import Incoming, Outgoing, Received
from cepbus.runtime.processing import CURRENT_AUTHOR
from cepbus.sdk.publisher import development_signer
from services.router.referrals.handlers import ReferralLifecycle

T = TypeVar("T")


@cache
def authorship() -> Authorship:
    """The edge's judge on the packaged (development) directory."""
    directory = load_directory()
    return Authorship(directory, ProducerCatalog.build(load_reference(), directory))


def signer(org_id: str) -> StatementSigner:
    return development_signer(org_id)


def signed_headers(events: Sequence[Event], key_of: str | None = None) -> list[tuple[str, bytes]]:
    """The `cepbus-signature` header of each event, all signed as one batch by `key_of` (default: each
    event's producer, who must then be the same for all)."""
    org = key_of or events[0].envelope.producer_org_id
    signatures = signer(org).sign([codec.encode(e) for e in events])
    return [(SIGNATURE_HEADER, s.header()) for s in signatures]


def author_of(event: Event, key_of: str | None = None) -> Author:
    """The author the edge finds for `event` signed with the development key of `key_of` (default: its
    producer); AuthorshipError as the edge raises it (`misattributed`, `claim_mismatch`...)."""
    value = codec.encode(event)
    [(_, header)] = signed_headers([event], key_of)
    found = authorship().verify(value, header)
    authorship().judge(event, found, core_topic(topic_for(event).name))
    return found


def message(event: Event, topic: str | None = None, key_of: str | None = None, offset: int = 0) -> Incoming:
    """A consumed message carrying `event` signed by `key_of` (default: its producer)."""
    name = topic or topic_for(event).name
    headers = tuple(signed_headers([event], key_of))
    return Incoming(name, 0, offset, event.partition_key(), codec.encode(event), headers)


def received(event: Event, topic: str | None = None) -> Received:
    """What a batch handler gets for `event`: the message, the event and its verified author."""
    return Received(message(event, topic), event, author_of(event))


@contextmanager
def admitted(event: Event, key_of: str | None = None) -> Iterator[Author]:
    """Inside: the event's author set as the runtime sets it for a per-event handler."""
    found = author_of(event, key_of)
    token = CURRENT_AUTHOR.set(found)
    try:
        yield found
    finally:
        CURRENT_AUTHOR.reset(token)


def handled(handler: Any, event: Event, key_of: str | None = None) -> Any:
    """`handler(event)` as the runtime calls it: after the edge verified who signed it."""
    with admitted(event, key_of):
        return handler(event)


class Admitted(ReferralLifecycle):
    """The router's lifecycle as the runtime runs it: each status update reaches `on_status` after the
    edge verified its author (signed here with its producer's development key)."""

    def on_status(self, update: ReferralStatusChanged) -> list[Outgoing]:
        if CURRENT_AUTHOR.get() is not None:
            return super().on_status(update)
        with admitted(update):
            return super().on_status(update)
