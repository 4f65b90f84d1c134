"""The shared decode -> handle -> dead-letter path, without a broker."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, IntakeRegistered
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, NOTICE_ISSUED
from cepbus.runtime.messages import Incoming, Outgoing, Rejected
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.sqldb import SqliteDatabase
from tests.support.factories import intake


@pytest.fixture
def runtime() -> EventProcessor:
    return EventProcessor("router", "cep-bus-router")


def message(value: bytes, offset: int = 3) -> Incoming:
    return Incoming(INTAKE_REGISTERED.name, 1, offset, b"p-1", value)


def only_dead_letter(outputs: list[Outgoing]) -> DeadLetter:
    assert len(outputs) == 1 and outputs[0].topic == DEAD_LETTER.name
    letter = outputs[0].event
    assert isinstance(letter, DeadLetter)
    return letter


def test_handler_outputs_pass_through(runtime: EventProcessor) -> None:
    event = intake()
    seen: list[IntakeRegistered] = []

    def handler(e: IntakeRegistered) -> list[Outgoing]:
        seen.append(e)
        return [Outgoing(NOTICE_ISSUED.name, e)]

    outputs = runtime.handle(message(codec.encode(event)), IntakeRegistered, handler)
    assert seen == [event] and outputs[0].event == event


def test_garbage_becomes_a_dead_letter_with_reason_and_original_bytes(runtime: EventProcessor) -> None:
    letter = only_dead_letter(
        runtime.handle(message(b"garbage, not an event"), IntakeRegistered, lambda e: [])
    )
    assert letter.reason.startswith("bad_marker")
    assert letter.original_value == b"garbage, not an event" and letter.original_key == b"p-1"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        INTAKE_REGISTERED.name,
        1,
        3,
    )
    assert letter.service == "router" and letter.error_class == "DecodeError"
    # the dead letter itself is a valid event of the contract
    assert codec.decode(codec.encode(letter)) == letter


def test_same_poison_message_gives_the_same_dead_letter_id(runtime: EventProcessor) -> None:
    first = only_dead_letter(runtime.handle(message(b"x"), IntakeRegistered, lambda e: []))
    again = only_dead_letter(runtime.handle(message(b"x"), IntakeRegistered, lambda e: []))
    other = only_dead_letter(runtime.handle(message(b"x", offset=4), IntakeRegistered, lambda e: []))
    assert first.event_id == again.event_id != other.event_id


def test_wrong_event_type_on_a_topic_is_dead_lettered(runtime: EventProcessor) -> None:
    letter = only_dead_letter(runtime.handle(message(codec.encode(intake())), DeadLetter, lambda e: []))
    assert letter.reason.startswith("unexpected_event_type")


def test_domain_rejection_and_handler_bug_are_dead_lettered(runtime: EventProcessor) -> None:
    def rejects(e: IntakeRegistered) -> list[Outgoing]:
        raise Rejected("intake_rejected", "before the region opened")

    def crashes(e: IntakeRegistered) -> list[Outgoing]:
        raise ZeroDivisionError("boom")

    data = codec.encode(intake())
    rejected = only_dead_letter(runtime.handle(message(data), IntakeRegistered, rejects))
    assert rejected.reason == "intake_rejected: before the region opened"
    crashed = only_dead_letter(runtime.handle(message(data), IntakeRegistered, crashes))
    assert (
        crashed.reason.startswith("handler_error: ZeroDivisionError")
        and crashed.error_class == "ZeroDivisionError"
    )


def test_the_consumer_gets_the_configured_fetch_wait_and_min_bytes() -> None:
    """Faust hard-codes fetch_max_wait_ms=1500 and does not expose fetch_min_bytes: the patch sets both."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from cepbus.runtime.faust_driver import _patch_fetch_max_wait

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    saved = thread_cls._create_worker_consumer
    saved_original = thread_cls.__dict__.get("_cepbus_original_create")
    try:
        thread_cls._cepbus_original_create = lambda self, transport: type("C", (), {})()
        _patch_fetch_max_wait(250, 65536)
        consumer = thread_cls._create_worker_consumer(object(), None)
        assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (250, 65536)
    finally:
        thread_cls._create_worker_consumer = saved
        if saved_original is None:
            del thread_cls._cepbus_original_create
        else:
            thread_cls._cepbus_original_create = saved_original


def test_a_batch_runs_in_one_transaction_keeps_order_and_isolates_a_failing_event(
    runtime: EventProcessor,
) -> None:
    """One commit per batch; outputs in input order; the event whose handler fails is dead-lettered
    and its writes are rolled back (its savepoint), the others' writes are kept."""
    db = SqliteDatabase(":memory:", schema=["CREATE TABLE seen (event_id TEXT PRIMARY KEY)"])
    events = [intake(), intake(), intake()]
    commits: list[int] = []
    depth = [0]

    @contextmanager
    def batch_transaction() -> Iterator[None]:
        depth[0] += 1
        try:
            with db.transaction():
                yield
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            commits.append(len(db.query("SELECT event_id FROM seen")))

    def handler(e: IntakeRegistered) -> list[Outgoing]:
        db.execute("INSERT INTO seen (event_id) VALUES (?)", (str(e.event_id),))
        if e.event_id == events[1].event_id:
            raise RuntimeError("bug on the second event")
        return [Outgoing(NOTICE_ISSUED.name, e)]

    batch = [message(codec.encode(e), offset=n) for n, e in enumerate(events)]
    outputs = runtime.handle_batch(batch, IntakeRegistered, handler, batch_transaction)
    assert [o.topic for o in outputs] == [NOTICE_ISSUED.name, DEAD_LETTER.name, NOTICE_ISSUED.name]
    assert outputs[0].event == events[0] and outputs[2].event == events[2]
    assert commits == [2]  # one commit for the batch, holding the two good events
    stored = {row[0] for row in db.query("SELECT event_id FROM seen")}
    assert stored == {str(events[0].event_id), str(events[2].event_id)}


def test_an_unavailable_database_is_never_a_dead_letter(runtime: EventProcessor) -> None:
    """The batch's transaction, or a store write inside a handler, failing because the database is
    locked beyond its busy timeout: the error propagates (the driver retries, acks nothing)."""
    events = [intake(), intake()]
    batch = [message(codec.encode(e), offset=n) for n, e in enumerate(events)]

    @contextmanager
    def unavailable() -> Iterator[None]:
        raise sqlite3.OperationalError("database is locked")
        yield  # pragma: no cover

    def handler(e: IntakeRegistered) -> list[Outgoing]:
        return [Outgoing(NOTICE_ISSUED.name, e)]

    with pytest.raises(sqlite3.OperationalError):
        runtime.handle_batch(batch, IntakeRegistered, handler, unavailable)

    def locked(e: IntakeRegistered) -> list[Outgoing]:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        runtime.handle(batch[0], IntakeRegistered, locked)
    db = SqliteDatabase(":memory:")
    with pytest.raises(sqlite3.OperationalError):
        runtime.handle_batch(batch, IntakeRegistered, locked, db.transaction)

    # a SQL mistake in a handler is a bug, not an outage: dead-lettered
    def mistaken(e: IntakeRegistered) -> list[Outgoing]:
        raise sqlite3.OperationalError("no such column: nope")

    [letter] = runtime.handle(batch[0], IntakeRegistered, mistaken)
    assert letter.topic == DEAD_LETTER.name


def test_the_outbox_keeps_the_first_decision_for_an_event_id(runtime: EventProcessor) -> None:
    """Handled again after a redelivery, with the state changed meanwhile, a handler may decide other
    content under the same derived id: the outbox keeps (and relays) what was decided first."""
    from cepbus.runtime.outbox import Outbox, outbox_schema

    db = SqliteDatabase(":memory:", schema=outbox_schema("t", "sqlite"))
    outbox = Outbox(db, "t")
    event = intake()
    batch = [message(codec.encode(event))]
    first = runtime.handle_batch(
        batch, IntakeRegistered, lambda e: [Outgoing(NOTICE_ISSUED.name, e)], db.transaction, outbox
    )
    changed = event.model_copy(update={"reception_site": "another decision"})
    runtime.handle_batch(
        batch, IntakeRegistered, lambda e: [Outgoing(NOTICE_ISSUED.name, changed)], db.transaction, outbox
    )
    [stored] = outbox.pending()
    assert stored.value == codec.encode(first[0].event) and stored.event_id == str(event.event_id)
    outbox.mark_sent([stored])
    assert outbox.pending() == [] and outbox.count_pending() == 0


def test_a_dead_letter_of_an_oversize_message_fits_and_keeps_its_digest(runtime: EventProcessor) -> None:
    """The issue's case: a 999,802-byte input made a 1,000,155-byte dead letter, over the limit."""
    import hashlib

    original = b"\xc3\x01" + b"z" * 999_800
    letter = only_dead_letter(runtime.handle(message(original), IntakeRegistered, lambda e: []))
    encoded = codec.encode(letter)
    assert len(encoded) <= runtime.max_message_bytes
    assert letter.original_truncated
    assert letter.original_size == len(original)
    assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
    assert original.startswith(letter.original_value) and 0 < len(letter.original_value) <= 65_536
    assert codec.decode(encoded) == letter


def test_a_dead_letter_keeps_a_small_original_whole(runtime: EventProcessor) -> None:
    import hashlib

    original = b"not avro at all"
    letter = only_dead_letter(runtime.handle(message(original), IntakeRegistered, lambda e: []))
    assert not letter.original_truncated and letter.original_value == original
    assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
    assert letter.original_size == len(original) and letter.replay_of is None


def test_a_replayed_message_that_fails_again_names_the_dead_letter_it_replays(
    runtime: EventProcessor,
) -> None:
    replayed = Incoming(INTAKE_REGISTERED.name, 1, 9, b"p-1", b"junk", (("cepbus-replay-of", b"dl-1"),))
    letter = only_dead_letter(runtime.handle(replayed, IntakeRegistered, lambda e: []))
    assert letter.replay_of == "dl-1"


def test_a_signed_update_with_a_megabyte_note_is_dead_lettered_naming_the_field_and_the_route_goes_on(
    runtime: EventProcessor,
) -> None:
    """Issue #23, finding 1: a valid update, signed by its partner, with a note of 1 MB. Refused at the
    edge (no handler sees it) with a reason that names the field and its bound, in a dead letter that
    fits; the next update of the route is handled."""
    from cepbus.contract.models import ReferralStatus, ReferralStatusChanged
    from cepbus.contract.topics import REFERRAL_STATUS
    from tests.support.authorship import signed_headers
    from tests.support.factories import referral, update

    ref = referral()
    noted = update(ref, ReferralStatus.INTERIM_UPDATE).model_copy(update={"note": "n" * 1_000_000})
    poison, signature = codec.encode(noted), tuple(signed_headers([noted]))  # signed by the recipient
    handled: list[ReferralStatusChanged] = []

    def handler(event: ReferralStatusChanged) -> list[Outgoing]:
        handled.append(event)
        return []

    letter = only_dead_letter(
        runtime.handle(
            Incoming(REFERRAL_STATUS.name, 0, 7, b"p-1", poison, signature), ReferralStatusChanged, handler
        )
    )
    assert handled == []
    assert letter.reason == (
        "invalid_content: ReferralStatusChanged: note: String should have at most 2000 characters"
    )
    assert letter.original_truncated and letter.original_size == len(poison)
    assert len(codec.encode(letter)) <= runtime.max_message_bytes
    following = update(ref, ReferralStatus.RECEIVED)
    next_message = Incoming(REFERRAL_STATUS.name, 0, 8, b"p-1", codec.encode(following))
    assert runtime.handle(next_message, ReferralStatusChanged, handler) == []
    assert handled == [following]


def test_a_correlation_header_over_the_envelopes_bound_still_gets_its_dead_letter(
    runtime: EventProcessor,
) -> None:
    """The header is the sender's, not the contract's: a junk message with a 129-character correlation
    header must still become a dead letter (an exception here retries the batch forever)."""
    junk = Incoming(INTAKE_REGISTERED.name, 1, 3, b"p-1", b"junk", (("cepbus-correlation-id", b"c" * 129),))
    letter = only_dead_letter(runtime.handle(junk, IntakeRegistered, lambda e: []))
    assert letter.reason.startswith("truncated_header") and len(letter.envelope.correlation_id) <= 128
