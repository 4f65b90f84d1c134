"""The notifier's one piece of state: the outbox of the notices it issued.

A notice is rendered and stamped when issued, so handling the same request twice (a redelivery after a
crash between the send and the offset commit) would give other bytes under the same derived event id,
which the ledger rightly counts as an id collision. The outbox keeps the first version of each notice
(`INSERT ... ON CONFLICT DO NOTHING` on the event id) and sends only that one, once acknowledged.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Self

from cepbus.runtime.outbox import Outbox, outbox_schema
from cepbus.runtime.sqldb import open_database, parse_database_url

_PG_SCHEMA_LOCK_KEY = 0x6365_7062_7573_05  # "cepbus" + 5


class NotifierStore:
    def __init__(self, url: str) -> None:
        dialect, _ = parse_database_url(url, "notifier")
        self._db = open_database(
            url, "notifier", schema=outbox_schema("notifier", dialect), schema_lock_key=_PG_SCHEMA_LOCK_KEY
        )
        self.outbox = Outbox(self._db, "notifier")

    def transaction(self) -> AbstractContextManager[None]:
        return self._db.transaction()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["NotifierStore"]
