"""A transactional outbox: what a handler, timer or sweep decides is written in the same transaction as
the state that records the decision, then relayed to the broker and marked sent only once the broker
acknowledged it (the Debezium/Eventuate outbox pattern).

So a crash at any point re-sends the same events, never loses one, and a message handled again after a
redelivery changes nothing: the first decision is the one stored (`INSERT ... ON CONFLICT DO NOTHING` on
the event id), so the ledger sees the same bytes again, a duplicate, never a collision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cepbus.contract import codec
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.sqldb import Database


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
            sent_at_ms BIGINT
        )""",
        f"CREATE INDEX IF NOT EXISTS {name}_outbox_unsent ON {name}_outbox (sent_at_ms, seq)",
    ]


class Outbox:
    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._table = f"{name}_outbox"

    def add(self, outputs: Sequence[Outgoing]) -> int:
        """Store `outputs` in order; an event id already stored keeps its first version. Call it inside
        the transaction that records the decision. Returns how many were new."""
        if not outputs:
            return 0
        now = time.time_ns() // 1_000_000
        new = 0
        with self._db.transaction():
            seq = int(self._db.query(f"SELECT COALESCE(MAX(seq), 0) FROM {self._table}")[0][0])
            known = self._known([str(out.event.event_id) for out in outputs])
            rows: list[tuple[object, ...]] = []
            for out in outputs:
                event_id = str(out.event.event_id)
                if event_id in known:
                    continue
                known.add(event_id)
                seq += 1
                headers = json.dumps([[name, value.hex()] for name, value in out.headers()])
                rows.append((seq, event_id, out.topic, out.key(), codec.encode(out.event), headers, now))
            if rows:
                self._db.executemany(
                    f"INSERT INTO {self._table} (seq, event_id, topic, msg_key, msg_value, headers, "
                    "created_at_ms, sent_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    rows,
                )
            new = len(rows)
        return new

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
        if not messages:
            return
        now = time.time_ns() // 1_000_000
        with self._db.transaction():
            self._db.executemany(
                f"UPDATE {self._table} SET sent_at_ms = ? WHERE seq = ? AND sent_at_ms IS NULL",
                [(now, m.seq) for m in messages],
            )

    def count_pending(self) -> int:
        return int(self._db.query(f"SELECT COUNT(*) FROM {self._table} WHERE sent_at_ms IS NULL")[0][0])


__all__ = ["Outbox", "StoredMessage", "outbox_schema"]
