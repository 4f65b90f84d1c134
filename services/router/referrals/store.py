"""Referral state in a real database (SQLite by default, PostgreSQL when configured): the current
status of each referral, its full history (with the signatures), the status updates already handled
(dedupe on event id) and the deadlines already reported as breached.

Broker-side state (Faust tables) is not trusted here: Tansu's recovery is off by up to a batch
(DEVELOPERS.md), and the read side (`cep-bus referral show`, the HTTP endpoint) needs a database anyway.
Queries use `?` placeholders, translated for psycopg.

Two times per referral and per step: the sender's claim (`requested_at_ms`, a step's `occurred_at_ms`),
kept and shown, and when the router received it on its own clock (`received_at_ms`), from which every
deadline, the drift window and the delays count: a sender's clock starts none of them.

A referral names whom the person was sent to, which says the public they belong to (Cap emploi: a
disability); erasure therefore deletes the person's referrals with their history, deadlines and the
verdicts on their steps (`personal_data`), after which an update for one is refused as for an unknown
referral. The partner keeps its own copy; the ledger keeps the sealed trail.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cepbus.contract.models import OrganisationKind, ReferralStatus, SealedContact
from cepbus.runtime.outbox import Outbox, outbox_personal_data, outbox_schema
from cepbus.runtime.sqldb import Dialect, PersonalData, SqlStore, StoreOptions
from cepbus.runtime.vault import ErasedData, PersonVault, person_keys_personal_data
from services.router.referrals.machine import TERMINAL

_DDL = [
    """CREATE TABLE IF NOT EXISTS referrals (
        referral_id TEXT PRIMARY KEY,
        request_event_id TEXT NOT NULL,
        person_pseudonym TEXT,
        correlation_id TEXT NOT NULL,
        requester_org_id TEXT NOT NULL,
        recipient_org_id TEXT NOT NULL,
        recipient_kind TEXT NOT NULL,
        region_code TEXT NOT NULL,
        state TEXT NOT NULL,
        requested_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        due_name TEXT,
        due_at_ms BIGINT,
        departement_code TEXT,
        received_at_ms BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS referrals_person ON referrals (person_pseudonym)",
    "CREATE INDEX IF NOT EXISTS referrals_due ON referrals (due_at_ms)",
    "CREATE INDEX IF NOT EXISTS referrals_recipient ON referrals (recipient_org_id, state)",
    "CREATE INDEX IF NOT EXISTS referrals_requester ON referrals (requester_org_id, state)",
    # Status updates are deduplicated per signer: (signer, event id) is one update, so one organisation
    # cannot pre-claim another's event id.
    """CREATE TABLE IF NOT EXISTS referral_steps (
        referral_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        status TEXT NOT NULL,
        state_after TEXT NOT NULL,
        actor_org_id TEXT NOT NULL,
        reason_code TEXT,
        note TEXT,
        occurred_at_ms BIGINT NOT NULL,
        signer_org_id TEXT,
        signature_hex TEXT,
        key_id TEXT,
        received_at_ms BIGINT,
        PRIMARY KEY (referral_id, seq),
        UNIQUE (signer_org_id, event_id)
    )""",
    """CREATE TABLE IF NOT EXISTS referral_verdicts (
        signer_org_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason_code TEXT,
        detail TEXT,
        state_before TEXT,
        state_after TEXT,
        key_id TEXT,
        PRIMARY KEY (signer_org_id, event_id)
    )""",
    """CREATE TABLE IF NOT EXISTS referral_breaches (
        referral_id TEXT NOT NULL,
        deadline TEXT NOT NULL,
        due_at_ms BIGINT NOT NULL,
        PRIMARY KEY (referral_id, deadline)
    )""",
    # the person's contact sealed to the recipient (issue #24): the router cannot open it, the recipient's
    # inbox fetches it from the read side
    """CREATE TABLE IF NOT EXISTS referral_contacts (
        referral_id TEXT PRIMARY KEY,
        recipient_key_id TEXT NOT NULL,
        ciphertext_b64 TEXT NOT NULL,
        ciphertext_sha256_hex TEXT NOT NULL
    )""",
    # the reminders sent, so that each is sent once (services/router/referrals/follow_up.py)
    """CREATE TABLE IF NOT EXISTS referral_reminders (
        referral_id TEXT NOT NULL,
        reminder TEXT NOT NULL,
        sent_at_ms BIGINT NOT NULL,
        PRIMARY KEY (referral_id, reminder)
    )""",
]

#: Columns added since the first release (a store created before gains them, keeping its rows; a new
#: store has them from its CREATE TABLE).
_ADDED_COLUMNS = {
    "referrals": [("departement_code", "TEXT"), ("received_at_ms", "BIGINT")],
    "referral_steps": [("received_at_ms", "BIGINT")],
}

_REFERRAL_COLUMNS = (
    "referral_id, request_event_id, person_pseudonym, correlation_id, requester_org_id, recipient_org_id, "
    "recipient_kind, region_code, state, requested_at_ms, updated_at_ms, due_name, due_at_ms, "
    "departement_code, received_at_ms"
)
_HISTORY_COLUMNS = (
    "referral_id, seq, event_id, status, state_after, actor_org_id, reason_code, note, occurred_at_ms, "
    "signer_org_id, signature_hex, key_id, received_at_ms"
)


@dataclass(frozen=True)
class ReferralRecord:
    referral_id: str
    request_event_id: str
    person_pseudonym: str | None
    correlation_id: str
    requester_org_id: str
    recipient_org_id: str
    recipient_kind: OrganisationKind
    region_code: str
    state: ReferralStatus
    # when the requester says it asked (its envelope's occurred_at): kept and shown, never a clock
    requested_at_ms: int
    updated_at_ms: int
    due_name: str | None = None
    due_at_ms: int | None = None
    # where the referral is handled, for its business-day calendar (None: the region's calendar)
    departement_code: str | None = None
    # when the router received the request, on its own clock: every deadline counts from it (None: a row
    # stored before the router kept it, whose deadlines were computed from the claim)
    received_at_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL

    @property
    def clock_start_ms(self) -> int:
        """Where the referral's deadlines, drift window and delays count from: the router's receipt, so
        that a requester who backdates its request cannot make the recipient late on arrival."""
        return self.requested_at_ms if self.received_at_ms is None else self.received_at_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "referral_id": self.referral_id,
            "request_event_id": self.request_event_id,
            "person_pseudonym": self.person_pseudonym,
            "correlation_id": self.correlation_id,
            "requester_org_id": self.requester_org_id,
            "recipient_org_id": self.recipient_org_id,
            "recipient_kind": self.recipient_kind.value,
            "region_code": self.region_code,
            "departement_code": self.departement_code,
            "status": self.state.value,
            "open": self.open,
            "requested_at_ms": self.requested_at_ms,
            "updated_at_ms": self.updated_at_ms,
            "pending_deadline": self.due_name,
            "pending_deadline_due_at_ms": self.due_at_ms,
            "received_at_ms": self.received_at_ms,
        }


@dataclass(frozen=True)
class HistoryEntry:
    referral_id: str
    seq: int
    event_id: str
    status: ReferralStatus
    state_after: ReferralStatus
    actor_org_id: str
    reason_code: str | None
    note: str | None
    occurred_at_ms: int  # when the sender says the step happened: shown, never a clock
    signer_org_id: str | None
    signature_hex: str | None
    key_id: str | None = None  # the directory key that verified the signature
    # when the router applied it, on its own clock (None: a step stored before the router kept it)
    received_at_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "status": self.status.value,
            "state_after": self.state_after.value,
            "actor_org_id": self.actor_org_id,
            "reason_code": self.reason_code,
            "note": self.note,
            "occurred_at_ms": self.occurred_at_ms,
            "signer_org_id": self.signer_org_id,
            "signature_hex": self.signature_hex,
            "key_id": self.key_id,
            "received_at_ms": self.received_at_ms,
        }


@dataclass(frozen=True)
class SeenUpdate:
    """The verdict already given on one (signer, event id): a redelivery gets the same verdict again."""

    fingerprint: str
    verdict: str  # applied | refused
    reason_code: str | None
    detail: str | None
    state_before: ReferralStatus | None
    state_after: ReferralStatus | None
    key_id: str | None


def _record(row: Sequence[Any]) -> ReferralRecord:
    return ReferralRecord(
        referral_id=row[0],
        request_event_id=row[1],
        person_pseudonym=row[2],
        correlation_id=row[3],
        requester_org_id=row[4],
        recipient_org_id=row[5],
        recipient_kind=OrganisationKind(row[6]),
        region_code=row[7],
        state=ReferralStatus(row[8]),
        requested_at_ms=int(row[9]),
        updated_at_ms=int(row[10]),
        due_name=row[11],
        due_at_ms=None if row[12] is None else int(row[12]),
        departement_code=row[13],
        received_at_ms=None if row[14] is None else int(row[14]),
    )


def _history(row: Sequence[Any]) -> HistoryEntry:
    return HistoryEntry(
        referral_id=row[0],
        seq=int(row[1]),
        event_id=row[2],
        status=ReferralStatus(row[3]),
        state_after=ReferralStatus(row[4]),
        actor_org_id=row[5],
        reason_code=row[6],
        note=row[7],
        occurred_at_ms=int(row[8]),
        signer_org_id=row[9],
        signature_hex=row[10],
        key_id=row[11],
        received_at_ms=None if row[12] is None else int(row[12]),
    )


def _sealed(key_id: str, ciphertext_b64: str, digest_hex: str) -> SealedContact:
    return SealedContact(
        recipient_key_id=key_id,
        ciphertext=base64.b64decode(ciphertext_b64),
        ciphertext_sha256=bytes.fromhex(digest_hex),
    )


def _prefixed(columns: str, table: str) -> str:
    return ", ".join(f"{table}.{name.strip()}" for name in columns.split(","))


#: A referral and its steps in one statement (one snapshot): the referral's columns, then a step's
#: (all null for a referral without steps).
_WITH_HISTORY_SQL = (
    f"SELECT {_prefixed(_REFERRAL_COLUMNS, 'r')}, {_prefixed(_HISTORY_COLUMNS, 's')} "
    "FROM referrals r LEFT JOIN referral_steps s ON s.referral_id = r.referral_id "
    "WHERE r.referral_id = ? ORDER BY s.seq"
)
_REFERRAL_WIDTH = len(_REFERRAL_COLUMNS.split(","))

_SEALED = "sealed:"  # prefix of a sealed note (then hex of the vault blob)

#: Referrals in the order the router received them (a row from before `received_at_ms`: its claimed time).
_RECEIVED_ORDER = "COALESCE(received_at_ms, requested_at_ms)"

_TERMINAL_SQL = ", ".join(f"'{state.value}'" for state in sorted(TERMINAL))


class ReferralStore(SqlStore):
    """One connection (SQLite file in WAL mode, or PostgreSQL), shared by threads under a lock."""

    store_name = "referral"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        for table, columns in _ADDED_COLUMNS.items():
            self._db.add_missing_columns(table, columns)
        self._vault = PersonVault(self._db, "referral")
        self.outbox = Outbox(self._db, "referral")  # the events the lifecycle emits, stored with its state

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return [*_DDL, *PersonVault.schema("referral", dialect), *outbox_schema("referral", dialect)]

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions(schema_lock_key=0x6365_7062_7573_03)  # "cepbus" + 3: first-time DDL, serialised

    def _open_note(self, entry: HistoryEntry) -> HistoryEntry:
        """Notes are free text a partner wrote about a person: kept sealed under the person's key."""
        if entry.note is None or not entry.note.startswith(_SEALED):
            return entry
        try:
            note: str | None = self._vault.open(
                bytes.fromhex(entry.note[len(_SEALED) :]), entry.event_id
            ).decode()
        except ErasedData:
            note = None
        return replace(entry, note=note)

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        """The person's referrals go with everything hanging from them (module doc); statements that
        find them through `referrals` run before its rows are deleted."""
        of_person = "referral_id IN (SELECT referral_id FROM referrals WHERE person_pseudonym = ?)"
        their_step = (
            "EXISTS (SELECT 1 FROM referral_steps s JOIN referrals r ON r.referral_id = s.referral_id "
            "WHERE r.person_pseudonym = ? AND s.signer_org_id = referral_verdicts.signer_org_id "
            "AND s.event_id = referral_verdicts.event_id)"
        )
        return (
            outbox_personal_data("referral"),
            PersonalData(
                "referral_verdicts",
                "the verdict on each status update by (signer, update id): for an applied step of the "
                "person's referral, it names the partner, i.e. whom they were sent to: deleted with it (a "
                "refused update keeps its row: signer, update id, the router's reason)",
                "delete_rows",
                where=their_step,
            ),
            PersonalData(
                "referral_steps",
                "the partners' free-text notes about the person, sealed",
                "destroy_key",
            ),
            PersonalData(
                "referral_steps",
                "each step of the person's referral: who acted, the status, the reason code, the signature",
                "delete_rows",
                where=of_person,
            ),
            PersonalData(
                "referral_breaches",
                "the deadlines the person's referral missed",
                "delete_rows",
                where=of_person,
            ),
            PersonalData(
                "referral_contacts",
                "the person's contact, sealed to the recipient (readable by the recipient only)",
                "delete_rows",
                where=of_person,
            ),
            PersonalData(
                "referral_reminders",
                "the reminders sent about the person's referral",
                "delete_rows",
                where=of_person,
            ),
            PersonalData(
                "referrals",
                "the person's pseudonym, journey id, whom they were referred to (organisation and kind: "
                "the public they belong to), where, its state and deadlines",
                "delete_rows",
                where="person_pseudonym = ?",
            ),
            person_keys_personal_data("referral"),
        )

    # -- referrals ----------------------------------------------------------------------------

    def add_referral(self, record: ReferralRecord) -> bool:
        """Insert a new referral; False when it is already known (a redelivered request)."""
        with self._db.transaction():
            if self._db.query("SELECT 1 FROM referrals WHERE referral_id = ?", (record.referral_id,)):
                return False
            self._db.execute(
                f"INSERT INTO referrals ({_REFERRAL_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                (
                    record.referral_id,
                    record.request_event_id,
                    record.person_pseudonym,
                    record.correlation_id,
                    record.requester_org_id,
                    record.recipient_org_id,
                    record.recipient_kind.value,
                    record.region_code,
                    record.state.value,
                    record.requested_at_ms,
                    record.updated_at_ms,
                    record.due_name,
                    record.due_at_ms,
                    record.departement_code,
                    record.received_at_ms,
                ),
            )
            return True

    def get(self, referral_id: str) -> ReferralRecord | None:
        rows = self._db.query(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE referral_id = ?", (referral_id,)
        )
        return _record(rows[0]) if rows else None

    def history(self, referral_id: str) -> list[HistoryEntry]:
        rows = self._db.query(
            f"SELECT {_HISTORY_COLUMNS} FROM referral_steps WHERE referral_id = ? ORDER BY seq",
            (referral_id,),
        )
        return [self._open_note(_history(row)) for row in rows]

    def with_history(self, referral_id: str) -> tuple[ReferralRecord, list[HistoryEntry]] | None:
        """The referral and its history read by one statement, so from one snapshot: two queries could
        see the state before an update and the history after it (a reader then shows an old state as
        current beside its newer history), whichever the backend and the number of routers."""
        rows = self._db.query(_WITH_HISTORY_SQL, (referral_id,))
        if not rows:
            return None
        width = _REFERRAL_WIDTH
        history = [self._open_note(_history(row[width:])) for row in rows if row[width] is not None]
        return _record(rows[0][:width]), history

    def of_person(self, person_pseudonym: str) -> list[ReferralRecord]:
        rows = self._db.query(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE person_pseudonym = ? "
            f"ORDER BY {_RECEIVED_ORDER}",
            (person_pseudonym,),
        )
        return [_record(row) for row in rows]

    def open_for(self, org_id: str) -> list[ReferralRecord]:
        """Open referrals the organisation sent or received."""
        rows = self._db.query(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE (recipient_org_id = ? OR requester_org_id = ?) "
            f"AND state NOT IN ({_TERMINAL_SQL}) ORDER BY {_RECEIVED_ORDER}, referral_id",
            (org_id, org_id),
        )
        return [_record(row) for row in rows]

    def all_for(
        self, org_id: str, limit: int = 10_000
    ) -> list[tuple[ReferralRecord, str | None, SealedContact | None]]:
        """Every referral the organisation sent or received (open or closed), oldest received first, with
        the reason code of its closing step (a decline's reason, a completion's outcome) and, on those it
        received, the contact sealed to it: its export, in one query."""
        rows = self._db.query(
            f"SELECT {_prefixed(_REFERRAL_COLUMNS, 'r')}, (SELECT s.reason_code FROM referral_steps s "
            "WHERE s.referral_id = r.referral_id AND s.state_after = r.state ORDER BY s.seq DESC LIMIT 1), "
            "c.recipient_key_id, c.ciphertext_b64, c.ciphertext_sha256_hex "
            "FROM referrals r LEFT JOIN referral_contacts c "
            "ON c.referral_id = r.referral_id AND r.recipient_org_id = ? "
            "WHERE r.recipient_org_id = ? OR r.requester_org_id = ? "
            "ORDER BY COALESCE(r.received_at_ms, r.requested_at_ms), r.referral_id LIMIT ?",
            (org_id, org_id, org_id, limit),
        )
        width = _REFERRAL_WIDTH
        return [
            (_record(row[:width]), row[width], None if row[width + 1] is None else _sealed(*row[width + 1 :]))
            for row in rows
        ]

    def add_contact(self, referral_id: str, sealed: SealedContact) -> None:
        """Keep a referral's sealed contact for its recipient (the first one received stays)."""
        with self._db.transaction():
            if self._db.query("SELECT 1 FROM referral_contacts WHERE referral_id = ?", (referral_id,)):
                return
            self._db.execute(
                "INSERT INTO referral_contacts (referral_id, recipient_key_id, ciphertext_b64, "
                "ciphertext_sha256_hex) VALUES (?, ?, ?, ?)",
                (
                    referral_id,
                    sealed.recipient_key_id,
                    base64.b64encode(sealed.ciphertext).decode(),
                    sealed.ciphertext_sha256.hex(),
                ),
            )

    def contact_of(self, referral_id: str) -> SealedContact | None:
        rows = self._db.query(
            "SELECT recipient_key_id, ciphertext_b64, ciphertext_sha256_hex FROM referral_contacts "
            "WHERE referral_id = ?",
            (referral_id,),
        )
        return _sealed(*rows[0]) if rows else None

    def open_referrals(self, limit: int = 10_000) -> list[ReferralRecord]:
        """Open referrals, oldest received first: what the follow-up sweep looks at."""
        rows = self._db.query(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE state NOT IN ({_TERMINAL_SQL}) "
            f"ORDER BY {_RECEIVED_ORDER}, referral_id LIMIT ?",
            (limit,),
        )
        return [_record(row) for row in rows]

    def mark_reminded(self, referral_id: str, reminder: str, sent_at_ms: int) -> bool:
        """Remember a reminder; False if it was already sent (each once)."""
        with self._db.transaction():
            if self._db.query(
                "SELECT 1 FROM referral_reminders WHERE referral_id = ? AND reminder = ?",
                (referral_id, reminder),
            ):
                return False
            self._db.execute(
                "INSERT INTO referral_reminders (referral_id, reminder, sent_at_ms) VALUES (?, ?, ?)",
                (referral_id, reminder, sent_at_ms),
            )
            return True

    def reminders(self, referral_id: str) -> list[str]:
        rows = self._db.query(
            "SELECT reminder FROM referral_reminders WHERE referral_id = ? ORDER BY sent_at_ms, reminder",
            (referral_id,),
        )
        return [str(row[0]) for row in rows]

    def expire(self, entry: HistoryEntry, updated_at_ms: int) -> bool:
        """Close an unanswered referral as expired, with its step (the bus's own); False if it was no
        longer open (answered or closed meanwhile): one transaction."""
        with self._db.transaction():
            rows = self._db.query("SELECT state FROM referrals WHERE referral_id = ?", (entry.referral_id,))
            if not rows or ReferralStatus(rows[0][0]) in TERMINAL:
                return False
            self._insert_step(entry, entry.note)
            self._db.execute(
                "UPDATE referrals SET state = ?, updated_at_ms = ?, due_name = NULL, due_at_ms = NULL "
                "WHERE referral_id = ?",
                (entry.state_after.value, updated_at_ms, entry.referral_id),
            )
            return True

    def count_by_state(self, referral_ids: Sequence[str] | None = None) -> dict[str, int]:
        if referral_ids is None:
            rows = self._db.query("SELECT state, COUNT(*) FROM referrals GROUP BY state")
            return {state: int(n) for state, n in rows}
        counts: dict[str, int] = {}
        ids = list(referral_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for state, n in self._db.query(
                f"SELECT state, COUNT(*) FROM referrals WHERE referral_id IN ({marks}) GROUP BY state", chunk
            ):
                counts[state] = counts.get(state, 0) + int(n)
        return counts

    # -- status updates -----------------------------------------------------------------------

    def seen(self, signer_org_id: str, event_id: str) -> SeenUpdate | None:
        rows = self._db.query(
            "SELECT fingerprint, verdict, reason_code, detail, state_before, state_after, key_id "
            "FROM referral_verdicts WHERE signer_org_id = ? AND event_id = ?",
            (signer_org_id, event_id),
        )
        if not rows:
            return None
        fingerprint, verdict, reason, detail, before, after, key_id = rows[0]
        return SeenUpdate(
            fingerprint,
            verdict,
            reason,
            detail,
            ReferralStatus(before) if before else None,
            ReferralStatus(after) if after else None,
            key_id,
        )

    def record_refusal(
        self,
        signer_org_id: str,
        event_id: str,
        fingerprint: str,
        reason_code: str,
        detail: str,
        state_before: ReferralStatus | None,
        key_id: str | None,
    ) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO referral_verdicts (signer_org_id, event_id, fingerprint, verdict, reason_code, "
                "detail, state_before, state_after, key_id) VALUES (?, ?, ?, 'refused', ?, ?, ?, ?, ?) "
                "ON CONFLICT (signer_org_id, event_id) DO NOTHING",
                (
                    signer_org_id,
                    event_id,
                    fingerprint,
                    reason_code,
                    detail,
                    state_before.value if state_before else None,
                    state_before.value if state_before else None,
                    key_id,
                ),
            )

    def apply(
        self,
        entry: HistoryEntry,
        fingerprint: str,
        state_before: ReferralStatus,
        due_name: str | None,
        due_at_ms: int | None,
        updated_at_ms: int,
    ) -> None:
        """Record an applied update: its verdict, new state, history entry and pending deadline
        (one transaction)."""
        with self._db.transaction():
            rows = self._db.query(
                "SELECT person_pseudonym FROM referrals WHERE referral_id = ?", (entry.referral_id,)
            )
            person = rows[0][0] if rows else None
            note = entry.note
            if note is not None and person:
                note = _SEALED + self._vault.seal(person, entry.event_id, note.encode()).hex()
            self._db.execute(
                "INSERT INTO referral_verdicts (signer_org_id, event_id, fingerprint, verdict, reason_code, "
                "detail, state_before, state_after, key_id) VALUES (?, ?, ?, 'applied', ?, NULL, ?, ?, ?)",
                (
                    entry.signer_org_id,
                    entry.event_id,
                    fingerprint,
                    entry.reason_code,
                    state_before.value,
                    entry.state_after.value,
                    entry.key_id,
                ),
            )
            self._insert_step(entry, note)
            self._db.execute(
                "UPDATE referrals SET state = ?, updated_at_ms = ?, due_name = ?, due_at_ms = ? "
                "WHERE referral_id = ?",
                (entry.state_after.value, updated_at_ms, due_name, due_at_ms, entry.referral_id),
            )

    def _insert_step(self, entry: HistoryEntry, note: str | None) -> None:
        self._db.execute(
            f"INSERT INTO referral_steps ({_HISTORY_COLUMNS}) VALUES ({', '.join('?' * 13)})",
            (
                entry.referral_id,
                entry.seq,
                entry.event_id,
                entry.status.value,
                entry.state_after.value,
                entry.actor_org_id,
                entry.reason_code,
                note,
                entry.occurred_at_ms,
                entry.signer_org_id,
                entry.signature_hex,
                entry.key_id,
                entry.received_at_ms,
            ),
        )

    def next_seq(self, referral_id: str) -> int:
        rows = self._db.query(
            "SELECT COALESCE(MAX(seq), 0) FROM referral_steps WHERE referral_id = ?", (referral_id,)
        )
        return int(rows[0][0]) + 1

    # -- deadlines ----------------------------------------------------------------------------

    def overdue(self, now_ms: int, limit: int = 1000) -> list[ReferralRecord]:
        """Open referrals whose pending deadline has passed and was not yet reported."""
        rows = self._db.query(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals r WHERE due_at_ms IS NOT NULL AND due_at_ms <= ? "
            "AND NOT EXISTS (SELECT 1 FROM referral_breaches b WHERE b.referral_id = r.referral_id "
            "AND b.deadline = r.due_name) ORDER BY due_at_ms LIMIT ?",
            (now_ms, limit),
        )
        return [_record(row) for row in rows]

    def mark_breached(self, referral_id: str, deadline: str, due_at_ms: int) -> bool:
        """Remember a reported breach; False if this deadline was already reported (report once)."""
        with self._db.transaction():
            if self._db.query(
                "SELECT 1 FROM referral_breaches WHERE referral_id = ? AND deadline = ?",
                (referral_id, deadline),
            ):
                return False
            self._db.execute(
                "INSERT INTO referral_breaches (referral_id, deadline, due_at_ms) VALUES (?, ?, ?)",
                (referral_id, deadline, due_at_ms),
            )
            return True

    def breaches(self, referral_id: str) -> list[tuple[str, int]]:
        rows = self._db.query(
            "SELECT deadline, due_at_ms FROM referral_breaches WHERE referral_id = ? ORDER BY due_at_ms",
            (referral_id,),
        )
        return [(name, int(due)) for name, due in rows]

    def count_breaches(self, referral_ids: Sequence[str] | None = None) -> int:
        if referral_ids is None:
            return int(self._db.query("SELECT COUNT(*) FROM referral_breaches")[0][0])
        total = 0
        ids = list(referral_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.query(
                f"SELECT COUNT(*) FROM referral_breaches WHERE referral_id IN ({marks})", chunk
            )
            total += int(rows[0][0])
        return total
