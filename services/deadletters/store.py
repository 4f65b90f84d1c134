"""The dead-letter archive: every service's refusals, kept where an operator can list, read and replay
them, and where erasure reaches them.

The dead-letter service (`services/deadletters/keeper.py`) consumes `cep.deadletter` into this store, a
database of its own: a dead letter is no regulation event, so it stays out of the ledger. `cep-bus
deadletters` lists, shows and replays them (`services/deadletters/cli.py`); a replay is recorded here, so
replaying by reason twice re-sends nothing. The original key and bytes, which may hold a person's profile,
are sealed under a key per person (the original key is the person pseudonym on every person topic;
anything else gets a key of its own), so erasure (`personal_data`) reaches them like every other store.
The copy on the topic itself expires with the topic's retention (docs/operations.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cepbus.contract.models import DeadLetter
from cepbus.runtime.directory_history import directory_history_personal_data, directory_history_schema
from cepbus.runtime.sqldb import Dialect, PersonalData, SqlStore, StoreOptions
from cepbus.runtime.vault import ErasedData, PersonVault, person_keys_personal_data

# The table keeps the name it had when the ledger kept the dead letters in its own database, so that a
# database from then still reads (CEPBUS_DEADLETTERS_DATABASE_URL pointed at it, or a shared database).
_TABLE = "ledger_dead_letters"
_COLUMNS = (
    "event_id, recorded_at_ms, service, source_topic, source_partition, source_offset, reason, error_class, "
    "person, original_key, original_value, original_sha256, original_size, original_truncated, replay_of"
)
_READ_COLUMNS = (
    "event_id, recorded_at_ms, service, source_topic, source_partition, source_offset, reason, "
    "error_class, original_sha256, original_size, original_truncated, replay_of, replayed_at_ms, "
    "replay_count"
)
_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
        event_id TEXT PRIMARY KEY,
        recorded_at_ms BIGINT NOT NULL,
        service TEXT NOT NULL,
        source_topic TEXT NOT NULL,
        source_partition INTEGER NOT NULL,
        source_offset BIGINT NOT NULL,
        reason TEXT NOT NULL,
        error_class TEXT NOT NULL,
        person TEXT,
        original_key {{blob}},
        original_value {{blob}} NOT NULL,
        original_sha256 TEXT NOT NULL,
        original_size BIGINT NOT NULL,
        original_truncated INTEGER NOT NULL DEFAULT 0,
        replay_of TEXT,
        replayed_at_ms BIGINT,
        replay_count INTEGER NOT NULL DEFAULT 0
    )""",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_reason ON {_TABLE} (reason, recorded_at_ms)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_person ON {_TABLE} (person)",
]
_PG_SCHEMA_LOCK_KEY = 0x6365_7062_7573_04  # "cepbus" + 4


@dataclass(frozen=True)
class StoredDeadLetter:
    event_id: str
    recorded_at_ms: int
    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error_class: str
    original_sha256: str
    original_size: int
    original_truncated: bool = False
    replay_of: str | None = None  # the dead letter whose replay failed again into this one
    replayed_at_ms: int | None = None  # the last `cep-bus deadletters replay` of this one
    replay_count: int = 0

    @property
    def replayable(self) -> bool:
        """Only a whole original can be re-sent; an oversize one kept a prefix and its digest."""
        return not self.original_truncated

    @property
    def reason_code(self) -> str:
        """The stable part of the reason (before the first ':'), e.g. `bad_marker`."""
        return self.reason.split(":", 1)[0]


def _person_of(letter: DeadLetter) -> str:
    """Whom the original is about, for sealing: its key when it is a pseudonym-like text."""
    key = letter.original_key
    if key:
        try:
            text = key.decode()
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable() and len(text) <= 200:
            return text
    return f"dead-letter/{letter.event_id}"


class DeadLetterStore(SqlStore):
    """The archive in its own database (SQLite or PostgreSQL, `cepbus.runtime.sqldb`)."""

    store_name = "dead-letter"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._vault = PersonVault(self._db, "deadletter")
        # the original's author signature (its cepbus-signature header), so a replay carries it
        self._db.add_missing_columns(
            _TABLE, [("original_signature", "BYTEA" if self._db.dialect == "postgresql" else "BLOB")]
        )

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        blob = "BYTEA" if dialect == "postgresql" else "BLOB"
        return [
            *(sql.replace("{blob}", blob) for sql in _DDL),
            *PersonVault.schema("deadletter", dialect),
            *directory_history_schema("deadletters", dialect),
        ]

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions(schema_lock_key=_PG_SCHEMA_LOCK_KEY)

    def record(self, letters: Sequence[DeadLetter], recorded_at_ms: int) -> int:
        """Keep these dead letters (a redelivered one is kept once); returns how many were new."""
        new = 0
        with self._db.transaction():
            for letter in letters:
                event_id = str(letter.event_id)
                if self._db.query(f"SELECT 1 FROM {_TABLE} WHERE event_id = ?", (event_id,)):
                    continue
                person = _person_of(letter)
                key = (
                    None
                    if letter.original_key is None
                    else self._vault.seal(person, f"{event_id}/key", letter.original_key)
                )
                value = self._vault.seal(person, f"{event_id}/value", letter.original_value)
                self._db.execute(
                    f"INSERT INTO {_TABLE} ({_COLUMNS}, original_signature) VALUES ({', '.join('?' * 16)})",
                    (
                        event_id,
                        recorded_at_ms,
                        letter.service,
                        letter.source_topic,
                        letter.source_partition,
                        letter.source_offset,
                        letter.reason,
                        letter.error_class,
                        person,
                        key,
                        value,
                        letter.original_sha256 or hashlib.sha256(letter.original_value).hexdigest(),
                        len(letter.original_value) if letter.original_size is None else letter.original_size,
                        int(letter.original_truncated),
                        letter.replay_of,
                        letter.original_signature,
                    ),
                )
                new += 1
        return new

    def _rows(
        self, where: str = "", params: Sequence[object] = (), limit: int | None = None
    ) -> list[StoredDeadLetter]:
        order = " ORDER BY recorded_at_ms, event_id" + (f" LIMIT {int(limit)}" if limit else "")
        rows = self._db.query(f"SELECT {_READ_COLUMNS} FROM {_TABLE} {where}{order}", params)
        return [
            StoredDeadLetter(
                r[0],
                int(r[1]),
                r[2],
                r[3],
                int(r[4]),
                int(r[5]),
                r[6],
                r[7],
                r[8],
                int(r[9]),
                bool(r[10]),
                r[11],
                None if r[12] is None else int(r[12]),
                int(r[13]),
            )
            for r in rows
        ]

    def list(
        self,
        *,
        reason: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
        unreplayed: bool = False,
    ) -> list[StoredDeadLetter]:
        """Oldest first; `reason` matches the reason code (`bad_marker`) or the whole reason."""
        clauses: list[str] = []
        params: list[object] = []
        if unreplayed:
            clauses.append("replayed_at_ms IS NULL")
        if reason:
            clauses.append("(reason = ? OR reason LIKE ?)")
            params += [reason, f"{reason}:%"]
        if since_ms is not None:
            clauses.append("recorded_at_ms >= ?")
            params.append(since_ms)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(where, params, limit)

    def get(self, event_id: str) -> StoredDeadLetter | None:
        found = self._rows("WHERE event_id = ?", (event_id,))
        return found[0] if found else None

    def original(self, event_id: str) -> tuple[bytes | None, bytes]:
        """The original key and bytes, unsealed; ErasedData once the person was erased."""
        rows = self._db.query(
            f"SELECT original_key, original_value FROM {_TABLE} WHERE event_id = ?", (event_id,)
        )
        if not rows:
            raise KeyError(f"no dead letter {event_id}")
        key, value = rows[0]
        return (
            None if key is None else self._vault.open(bytes(key), f"{event_id}/key"),
            self._vault.open(bytes(value), f"{event_id}/value"),
        )

    def original_signature(self, event_id: str) -> bytes | None:
        """The original's `cepbus-signature` header, as it came (None: it had none, or an older row)."""
        rows = self._db.query(f"SELECT original_signature FROM {_TABLE} WHERE event_id = ?", (event_id,))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])

    def mark_replayed(self, event_id: str, at_ms: int) -> None:
        """Record that the original was re-published (after the broker acknowledged it)."""
        with self._db.transaction():
            self._db.execute(
                f"UPDATE {_TABLE} SET replayed_at_ms = ?, replay_count = replay_count + 1 WHERE event_id = ?",
                (at_ms, event_id),
            )

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        """A dead letter of the person goes whole: its original is sealed under their key (noise once
        the key is gone, never replayable again) and its reason may quote a value of it (a validation
        error names the field and what it held)."""
        return (
            PersonalData(
                _TABLE,
                "the original key and bytes (the person's event, profile included), sealed",
                "destroy_key",
            ),
            PersonalData(
                _TABLE,
                "the person's pseudonym, the reason (which may quote the original), the original's digest, "
                "size and signature header",
                "delete_rows",
                where="person = ?",
            ),
            person_keys_personal_data("deadletter"),
            directory_history_personal_data("deadletters"),
        )


__all__ = ["DeadLetterStore", "ErasedData", "StoredDeadLetter"]
