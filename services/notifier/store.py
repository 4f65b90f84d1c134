"""The notifier's one piece of state: the outbox of the notices it issued.

A notice is rendered and stamped when issued, so handling the same request twice (a redelivery after a
crash between the send and the offset commit) would give other bytes under the same derived event id,
which the ledger rightly counts as an id collision. The outbox keeps the first version of each notice
(`INSERT ... ON CONFLICT DO NOTHING` on the event id) and sends only that one, once acknowledged.
"""

from __future__ import annotations

from cepbus.runtime.outbox import Outbox, outbox_schema
from cepbus.runtime.sqldb import Dialect, SqlStore, StoreOptions


class NotifierStore(SqlStore):
    store_name = "notifier"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.outbox = Outbox(self.database, "notifier")

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return outbox_schema("notifier", dialect)

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions(schema_lock_key=0x6365_7062_7573_05)  # "cepbus" + 5: first-time DDL, serialised


__all__ = ["NotifierStore"]
