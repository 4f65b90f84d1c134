"""A transactional outbox: what a handler, timer or sweep decides is written in the same transaction as
the state that records the decision, then relayed to the broker and marked sent only once the broker
acknowledged it (the Debezium/Eventuate outbox pattern).

So a crash at any point re-sends the same events, never loses one, and a message handled again after a
redelivery changes nothing: the first decision is the one stored (`INSERT ... ON CONFLICT DO NOTHING` on
the event id), so the ledger sees the same bytes again, a duplicate, never a collision.

What waits in an outbox is personal (a decision with the rules that fired, a notice and its text, a
referral with the shared profile, keyed by the person's pseudonym), so an outbox keeps it only until the
broker acknowledged it: `mark_sent` then deletes the row's content (key, value, headers, topic, person)
and keeps a tombstone, the event id with its sequence number and times. The tombstone is what keeps the
first decision the only one: a redelivered input whose output was already sent (a crash, or a lost
offset commit, between the acknowledgement and the commit) is decided again with other bytes under the
same derived event id (a new `occurred_at`, a notice stamped later); were the row gone, that second
version would be sent and the ledger, which dedupes on id *and* content, would count an id collision
and raise its alert. With the tombstone, `add` sees the id and sends nothing. A tombstone holds nothing
of a person: a keyed event id, two times.

Tombstones are kept for `TOMBSTONE_RETENTION_MS` (30 days), then deleted (checked at most once an
hour, when rows are marked sent): a redelivery comes within seconds of its input (an offset commit lost
in a crash), and an input redelivered after a month would still not go unnoticed: the ledger counts the
second version as an id collision and alerts. Without it the table grew by one row per event forever.

Unsent rows are erased with the person (`person` column, the pseudonym of the event: `personal_data`).
A store created by an older version gains the `person` column (rows still unsent get it from their Kafka
key, the pseudonym on every person topic) and loses the content of the rows it had already sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cepbus.contract import codec
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.sqldb import Database, PersonalData

#: How long the tombstone of a sent event is kept (module doc).
TOMBSTONE_RETENTION_MS = 30 * 86_400_000
#: How often, at most, the expired tombstones are looked for.
PRUNE_EVERY_MS = 3_600_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class StoredMessage:
    """An outbox row: the encoded event, ready to send as it was first decided."""

    seq: int
    event_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def outbox_schema(name: str, dialect: str) -> list[str]:
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    return [
        f"""CREATE TABLE IF NOT EXISTS {name}_outbox (
            seq BIGINT PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            msg_key {blob},
            msg_value {blob} NOT NULL,
            headers TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            sent_at_ms BIGINT,
            person TEXT
        )""",
        f"CREATE INDEX IF NOT EXISTS {name}_outbox_unsent ON {name}_outbox (sent_at_ms, seq)",
    ]


def outbox_personal_data(name: str) -> PersonalData:
    """The declaration of the `<name>_outbox` table, for the store that holds it."""
    return PersonalData(
        f"{name}_outbox",
        "events decided and not yet acknowledged by the broker, in clear (a decision and its rules, a "
        "notice and its text, a referral with the shared profile), keyed by the person's pseudonym; "
        "once acknowledged, only a tombstone (event id, times)",
        "delete_rows",
        where="person = ?",
    )


_BLANK = "topic = '', msg_key = NULL, msg_value = ?, headers = '[]', person = NULL"


class Outbox:
    def __init__(
        self,
        db: Database,
        name: str,
        *,
        tombstone_retention_ms: int = TOMBSTONE_RETENTION_MS,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._db = db
        self._table = f"{name}_outbox"
        self._retention_ms = tombstone_retention_ms
        self._clock = clock
        self._pruned_at_ms: int | None = None
        db.add_missing_columns(self._table, [("person", "TEXT")])  # a table from before it
        self._upgrade()

    def _upgrade(self) -> None:
        """An outbox an older version filled: rows it sent kept their content (blank it), unsent rows
        have no `person` (take it from the Kafka key, the pseudonym on every person topic)."""
        with self._db.transaction():
            self._db.execute(
                f"UPDATE {self._table} SET {_BLANK} WHERE sent_at_ms IS NOT NULL AND topic <> ''", (b"",)
            )
            rows = self._db.query(
                f"SELECT seq, msg_key FROM {self._table} "
                "WHERE sent_at_ms IS NULL AND person IS NULL AND msg_key IS NOT NULL"
            )
            for seq, key in rows:
                try:
                    person = bytes(key).decode()
                except UnicodeDecodeError:
                    continue
                self._db.execute(f"UPDATE {self._table} SET person = ? WHERE seq = ?", (person, seq))

    def add(self, outputs: Sequence[Outgoing]) -> int:
        """Store `outputs` in order; an event id already stored (unsent, or sent: its tombstone) keeps
        its first version. Call it inside the transaction that records the decision. Returns how many
        were new."""
        if not outputs:
            return 0
        with self._db.transaction():
            return self._append([(out, out.event.envelope.person_pseudonym) for out in outputs])

    def _append(self, items: Sequence[tuple[Outgoing, str | None]]) -> int:
        """Append the outputs whose event id is not stored yet, in order after the last row, each erased
        with its person; inside the caller's transaction. Returns how many were new."""
        now = self._clock()
        seq = int(self._db.query(f"SELECT COALESCE(MAX(seq), 0) FROM {self._table}")[0][0])
        known = self._known([str(out.event.event_id) for out, _ in items])
        rows: list[tuple[object, ...]] = []
        for out, person in items:
            event_id = str(out.event.event_id)
            if event_id in known:
                continue
            known.add(event_id)
            seq += 1
            headers = json.dumps([[name, value.hex()] for name, value in out.headers()])
            rows.append((seq, event_id, out.topic, out.key(), codec.encode(out.event), headers, now, person))
        if rows:
            self._db.executemany(
                f"INSERT INTO {self._table} (seq, event_id, topic, msg_key, msg_value, headers, "
                "created_at_ms, sent_at_ms, person) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                rows,
            )
        return len(rows)

    def _known(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.query(f"SELECT event_id FROM {self._table} WHERE event_id IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found

    def pending(self, limit: int = 1000) -> list[StoredMessage]:
        """The events not yet acknowledged by the broker, oldest first."""
        rows = self._db.query(
            f"SELECT seq, event_id, topic, msg_key, msg_value, headers FROM {self._table} "
            f"WHERE sent_at_ms IS NULL ORDER BY seq LIMIT {int(limit)}"
        )
        return [
            StoredMessage(
                int(seq),
                event_id,
                topic,
                None if key is None else bytes(key),
                bytes(value),
                [(name, bytes.fromhex(hexed)) for name, hexed in json.loads(headers)],
            )
            for seq, event_id, topic, key, value, headers in rows
        ]

    def mark_sent(self, messages: Sequence[StoredMessage]) -> None:
        """The broker acknowledged these: delete their content, keep their tombstones (module doc)."""
        if not messages:
            return
        now = self._clock()
        with self._db.transaction():
            self._db.executemany(
                f"UPDATE {self._table} SET {_BLANK}, sent_at_ms = ? WHERE seq = ? AND sent_at_ms IS NULL",
                [(b"", now, m.seq) for m in messages],
            )
            if self._pruned_at_ms is None or now - self._pruned_at_ms >= PRUNE_EVERY_MS:
                self.prune_tombstones(now - self._retention_ms)
                self._pruned_at_ms = now

    def prune_tombstones(self, sent_before_ms: int) -> int:
        """Delete the tombstones of events sent before `sent_before_ms`; never a row still unsent.
        Returns how many went."""
        where = "WHERE topic = '' AND sent_at_ms IS NOT NULL AND sent_at_ms < ?"
        with self._db.transaction():
            count = int(
                self._db.query(f"SELECT COUNT(*) FROM {self._table} {where}", (sent_before_ms,))[0][0]
            )
            if count:
                self._db.execute(f"DELETE FROM {self._table} {where}", (sent_before_ms,))
        return count

    def replace(self, refused: Sequence[tuple[StoredMessage, Outgoing]]) -> None:
        """Rows the broker refused for good, each replaced by its dead letter in one transaction: the
        row becomes a tombstone (so a redelivered input decides nothing again), the letter goes to the
        end of the outbox, erased with the person the row was about."""
        if not refused:
            return
        now = self._clock()
        with self._db.transaction():
            letters: list[tuple[Outgoing, str | None]] = []
            for row, letter in refused:
                found = self._db.query(f"SELECT person FROM {self._table} WHERE seq = ?", (row.seq,))
                self._db.execute(
                    f"UPDATE {self._table} SET {_BLANK}, sent_at_ms = ? WHERE seq = ? AND sent_at_ms IS NULL",
                    (b"", now, row.seq),
                )
                letters.append((letter, found[0][0] if found else None))
            self._append(letters)

    def count_pending(self) -> int:
        return int(self._db.query(f"SELECT COUNT(*) FROM {self._table} WHERE sent_at_ms IS NULL")[0][0])

    def count_stored(self) -> int:
        """Rows that still hold an event's content (unsent): what the outbox keeps of anyone."""
        return int(self._db.query(f"SELECT COUNT(*) FROM {self._table} WHERE topic <> ''")[0][0])


__all__ = ["Outbox", "StoredMessage", "outbox_personal_data", "outbox_schema"]
