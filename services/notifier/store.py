"""The notifier's one piece of state: the outbox of the notices it issued.

A notice is rendered and stamped when issued, so handling the same request twice (a redelivery after a
crash between the send and the offset commit) would give other bytes under the same derived event id,
which the ledger rightly counts as an id collision. The outbox keeps the first version of each notice
(`INSERT ... ON CONFLICT DO NOTHING` on the event id) and sends only that one, once acknowledged; then
only its tombstone stays (`cepbus.runtime.outbox`). A notice not yet sent (its text names the operators
the person must be told of: Cap emploi reveals a disability) is deleted when the person is erased.
"""

from __future__ import annotations

from collections.abc import Sequence

from cepbus.runtime.directory_history import directory_history_personal_data, directory_history_schema
from cepbus.runtime.outbox import Outbox, outbox_personal_data, outbox_schema
from cepbus.runtime.sqldb import Dialect, PersonalData, SqlStore, StoreOptions


class NotifierStore(SqlStore):
    store_name = "notifier"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.outbox = Outbox(self.database, "notifier")

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return [*outbox_schema("notifier", dialect), *directory_history_schema("notifier", dialect)]

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions(schema_lock_key=0x6365_7062_7573_05)  # "cepbus" + 5: first-time DDL, serialised

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        return (outbox_personal_data("notifier"), directory_history_personal_data("notifier"))


__all__ = ["NotifierStore"]
