"""A redelivered notice request re-renders the notice (a new `occurred_at`) under the same derived id;
the notifier's outbox keeps and sends the first version only, so the ledger never sees a collision."""

from __future__ import annotations

import time
from pathlib import Path

from cepbus.contract import codec
from cepbus.contract.models import NoticeIssued, NoticeRequested
from cepbus.contract.topics import NOTICE_REQUESTED
from cepbus.reference import load_reference
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
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
