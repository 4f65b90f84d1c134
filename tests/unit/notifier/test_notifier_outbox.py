"""A redelivered notice request re-renders the notice (a new `occurred_at`) under the same derived id;
the notifier's outbox keeps and sends the first version only, so the ledger never sees a collision, even
after the first was sent and deleted (its tombstone). What waits unsent is erased with the person."""

from __future__ import annotations

import time
from pathlib import Path

from cepbus.contract import codec
from cepbus.contract.models import NoticeIssued, NoticeRequested
from cepbus.contract.topics import NOTICE_REQUESTED
from cepbus.reference import load_reference
from cepbus.runtime.messages import Incoming, Outgoing
from cepbus.runtime.outbox import PRUNE_EVERY_MS, TOMBSTONE_RETENTION_MS, Outbox, outbox_schema
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.sqldb import SqliteDatabase
from services.notifier.handlers import NotifierHandlers
from services.notifier.routes import route_table
from services.notifier.store import NotifierStore
from services.router.handlers import RouterHandlers
from tests.support.factories import intake


def a_request() -> NoticeRequested:
    [request] = [
        out.event
        for out in RouterHandlers(load_reference()).on_intake(intake(cadre=True))
        if isinstance(out.event, NoticeRequested)
    ]
    assert isinstance(request, NoticeRequested)
    return request


def test_a_redelivered_request_sends_the_first_notice_only(tmp_path: Path) -> None:
    store = NotifierStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    [notices] = route_table(NotifierHandlers(load_reference()), store)
    processor = EventProcessor("notifier", "cep-bus-notifier")
    message = Incoming(NOTICE_REQUESTED.name, 0, 7, b"p", codec.encode(a_request()))
    handler = notices.handler
    assert notices.outbox is store.outbox and notices.transaction is not None

    first = processor.handle_batch([message], NoticeRequested, handler, notices.transaction, notices.outbox)  # type: ignore[arg-type]
    time.sleep(0.01)  # the second rendering is stamped later
    again = processor.handle_batch([message], NoticeRequested, handler, notices.transaction, notices.outbox)  # type: ignore[arg-type]
    assert first[0].event.event_id == again[0].event.event_id
    assert codec.encode(first[0].event) != codec.encode(again[0].event)  # what a stateless notifier sent

    pending = store.outbox.pending()
    assert len(pending) == 1 and pending[0].value == codec.encode(first[0].event)
    assert isinstance(codec.decode(pending[0].value), NoticeIssued)
    store.outbox.mark_sent(pending)
    processor.handle_batch([message], NoticeRequested, handler, notices.transaction, notices.outbox)  # type: ignore[arg-type]
    assert store.outbox.pending() == []  # handled a third time: nothing more to send
    store.close()


def notice_for(person: str) -> Outgoing:
    [request] = [
        out.event
        for out in RouterHandlers(load_reference()).on_intake(intake(person=person, boeth=True))
        if isinstance(out.event, NoticeRequested)
    ]
    return NotifierHandlers(load_reference()).on_notice_requested(request)[0]


def store_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())


def test_a_sent_notice_leaves_only_its_tombstone_and_no_byte_of_its_text(tmp_path: Path) -> None:
    """Once the broker acknowledged it, the notice (its text names Cap emploi: a disability) is deleted
    from the outbox; its event id stays, so a redelivered request still sends nothing."""
    store = NotifierStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    notice = notice_for("p-tombstone")
    text = notice.event.text.encode()  # type: ignore[attr-defined]
    assert store.outbox.add([notice]) == 1
    assert text in store_bytes(tmp_path)  # the check below can fail
    store.outbox.mark_sent(store.outbox.pending())
    store.database.purge_deleted()
    assert text not in store_bytes(tmp_path) and b"p-tombstone" not in store_bytes(tmp_path)
    assert store.outbox.count_stored() == 0 and store.outbox.pending() == []
    assert store.outbox.add([notice]) == 0  # the tombstone: the first decision stays the only one
    store.close()


def test_erasure_deletes_the_persons_unsent_notices_and_nobody_elses(tmp_path: Path) -> None:
    store = NotifierStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    erased, kept, sent = notice_for("p-gone"), notice_for("p-stays"), notice_for("p-gone")
    store.outbox.add([sent])
    store.outbox.mark_sent(store.outbox.pending())
    store.outbox.add([erased, kept])
    count = store.erase_person("p-gone")
    assert count.of("notifier_outbox") == 1
    assert [m.event_id for m in store.outbox.pending()] == [str(kept.event.event_id)]
    assert b"p-gone" not in store_bytes(tmp_path)
    assert store.outbox.add([sent]) == 0  # the tombstone of what was sent before stays
    store.close()


def test_an_outbox_from_before_loses_what_it_sent_and_knows_whom_the_rest_is_about(tmp_path: Path) -> None:
    """The table as an older version created it (no `person`), a row sent (still whole) and one not."""
    path = tmp_path / "notifier.db"
    old_schema = [outbox_schema("notifier", "sqlite")[0].replace(",\n            person TEXT", "")]
    assert "person" not in old_schema[0]
    sent, waiting = notice_for("p-old-sent"), notice_for("p-old-waiting")
    with SqliteDatabase(path, schema=old_schema) as db, db.transaction():
        for seq, out, sent_at in ((1, sent, 5), (2, waiting, None)):
            db.execute(
                "INSERT INTO notifier_outbox (seq, event_id, topic, msg_key, msg_value, headers, "
                "created_at_ms, sent_at_ms) VALUES (?, ?, ?, ?, ?, '[]', 1, ?)",
                (seq, str(out.event.event_id), out.topic, out.key(), codec.encode(out.event), sent_at),
            )
    store = NotifierStore(f"sqlite:///{path}")
    assert [m.event_id for m in store.outbox.pending()] == [str(waiting.event.event_id)]
    assert store.outbox.count_stored() == 1  # the sent one is a tombstone now
    assert store.erase_person("p-old-waiting").of("notifier_outbox") == 1
    assert store.outbox.pending() == []
    assert b"p-old" not in store_bytes(tmp_path)
    store.close()


def test_tombstones_go_after_their_retention_and_unsent_rows_never(tmp_path: Path) -> None:
    """A tombstone keeps a redelivered input from being decided twice for a month, then goes (the table
    would otherwise grow by one row per event forever); an unsent row is never pruned."""
    store = NotifierStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    now = [1_000_000_000_000]
    outbox = Outbox(store.database, "notifier", clock=lambda: now[0])
    old, recent, unsent = notice_for("p-old"), notice_for("p-recent"), notice_for("p-unsent")
    outbox.add([old])
    outbox.mark_sent(outbox.pending())
    now[0] += TOMBSTONE_RETENTION_MS - PRUNE_EVERY_MS
    outbox.add([recent, unsent])
    outbox.mark_sent(outbox.pending()[:1])  # `recent` sent; `unsent` waits (a broker away for a month)
    assert outbox.add([old, recent]) == 0  # both tombstones still there: nothing is decided twice
    now[0] += 2 * PRUNE_EVERY_MS  # `old` is now past its retention, `recent` is not
    assert outbox.prune_tombstones(now[0] - TOMBSTONE_RETENTION_MS) == 1
    assert [m.event_id for m in outbox.pending()] == [str(unsent.event.event_id)]
    assert outbox.add([recent]) == 0  # its tombstone stays
    assert outbox.add([old]) == 1  # gone: a redelivery this late would be decided (and sent) again
    store.close()


def test_marking_rows_sent_prunes_expired_tombstones_at_most_once_an_hour(tmp_path: Path) -> None:
    store = NotifierStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    now = [1_000_000_000_000]
    outbox = Outbox(store.database, "notifier", clock=lambda: now[0])
    first, second, third = notice_for("p-1"), notice_for("p-2"), notice_for("p-3")
    outbox.add([first])
    outbox.mark_sent(outbox.pending())  # prunes (the first time), nothing expired yet
    now[0] += TOMBSTONE_RETENTION_MS + 1
    outbox.add([second])
    outbox.mark_sent(outbox.pending())  # an hour and more since the last look: `first` expires
    assert outbox.add([first]) == 1
    outbox.mark_sent(outbox.pending())
    now[0] += TOMBSTONE_RETENTION_MS + 1
    outbox.add([third])
    now[0] += 1
    outbox._pruned_at_ms = now[0]  # as if it had just looked
    outbox.mark_sent(outbox.pending())  # less than an hour since: `second` stays although expired
    assert outbox.add([second]) == 0
    store.close()
