"""The mailer's state: the outbox of the emails it decided, what it knows of each referral, and the
steps waiting for their referral.

The outbox is what makes an email neither lost nor sent twice while the SMTP server is away: the route
handler stores each email it decides in the batch's transaction, under an id derived from its cause
(`decisions.email_id`), with `INSERT ... ON CONFLICT DO NOTHING`, so a redelivered event adds nothing;
the send timer claims the due ones, sends them and marks each sent once the SMTP server accepted it,
or keeps it with its attempts counted and a later `next_attempt_at_ms` (exponential backoff). Nothing
ever deletes an unsent email but the erasure of its person. A claim pushes `next_attempt_at_ms` a lease
ahead, so another replica does not take the same emails meanwhile (and a crash mid-send retries them
once the lease is over: at least once, each with the same Message-ID).

No email holds anything of the person (`decisions.Notice`); the `person` column (the pseudonym) is there
only so that `cep-bus erase --person` finds the emails not sent yet, the referrals and the waiting steps.
Once sent, an email keeps only its id, kind, organisation and times (a tombstone, so that a redelivery
still adds nothing), for `TOMBSTONE_RETENTION_MS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

from cepbus.contract.models import ReferralStatus
from cepbus.runtime.directory_history import directory_history_personal_data, directory_history_schema
from cepbus.runtime.sqldb import Dialect, PersonalData, Row, SqlStore, StoreOptions
from services.mailer.decisions import Referral, Step

#: How long a sent email's tombstone is kept (a redelivery comes within seconds of its event).
TOMBSTONE_RETENTION_MS = 30 * 86_400_000
#: How long a step waits for a referral the mailer never saw (one from before it ran) before it is dropped.
WAITING_RETENTION_MS = 30 * 86_400_000

_COLUMNS = "email_id, kind, org_id, address, subject, body_text, body_html, attempts, created_at_ms"


@dataclass(frozen=True)
class QueuedEmail:
    """An email decided and rendered, to store (the pseudonym only for erasure)."""

    email_id: str
    kind: str
    org_id: str
    address: str
    subject: str
    text: str
    html: str
    person: str | None


@dataclass(frozen=True)
class PendingEmail:
    """An unsent email as the send timer claims it."""

    email_id: str
    kind: str
    org_id: str
    address: str
    subject: str
    text: str
    html: str
    attempts: int
    created_at_ms: int


@dataclass(frozen=True)
class EmailState:
    """Where one email stands (operations, tests)."""

    email_id: str
    kind: str
    org_id: str
    attempts: int
    next_attempt_at_ms: int
    sent_at_ms: int | None
    last_error: str | None


def _pending(row: Row) -> PendingEmail:
    email_id, kind, org_id, address, subject, text, html = (str(value) for value in row[:7])
    return PendingEmail(email_id, kind, org_id, address, subject, text, html, int(row[7]), int(row[8]))


class MailerStore(SqlStore):
    store_name = "mailer"

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS mailer_emails (
                email_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                org_id TEXT NOT NULL,
                address TEXT,
                subject TEXT,
                body_text TEXT,
                body_html TEXT,
                person TEXT,
                created_at_ms BIGINT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at_ms BIGINT NOT NULL,
                last_error TEXT,
                sent_at_ms BIGINT
            )""",
            "CREATE INDEX IF NOT EXISTS mailer_emails_due ON mailer_emails (sent_at_ms, next_attempt_at_ms)",
            "CREATE INDEX IF NOT EXISTS mailer_emails_person ON mailer_emails (person)",
            """CREATE TABLE IF NOT EXISTS mailer_referrals (
                referral_id TEXT PRIMARY KEY,
                requester_org_id TEXT NOT NULL,
                recipient_org_id TEXT NOT NULL,
                person TEXT,
                seen_at_ms BIGINT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS mailer_referrals_person ON mailer_referrals (person)",
            """CREATE TABLE IF NOT EXISTS mailer_waiting_steps (
                event_id TEXT PRIMARY KEY,
                referral_id TEXT NOT NULL,
                status TEXT NOT NULL,
                signer_org_id TEXT,
                person TEXT,
                parked_at_ms BIGINT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS mailer_waiting_referral ON mailer_waiting_steps (referral_id)",
            *directory_history_schema("mailer", dialect),
        ]

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions(schema_lock_key=0x6365_7062_7573_06)  # "cepbus" + 6: first-time DDL, serialised

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        return (
            PersonalData(
                "mailer_emails",
                "emails not sent yet about a referral of the person (their text names organisations, the "
                "referral id and a link, nothing of the person), with the pseudonym to find them; once sent "
                "a tombstone: email id, kind, organisation and times",
                "delete_rows",
                where="person = ?",
            ),
            PersonalData(
                "mailer_referrals",
                "the person's referrals: referral id and the organisations at both ends, with the pseudonym",
                "delete_rows",
                where="person = ?",
            ),
            PersonalData(
                "mailer_waiting_steps",
                "status steps of the person's referrals waiting for their referral, with the pseudonym",
                "delete_rows",
                where="person = ?",
            ),
            directory_history_personal_data("mailer"),
        )

    # -- deciding (inside the route's transaction) -----------------------------------------------------

    def queue(self, emails: Sequence[QueuedEmail], now_ms: int) -> list[QueuedEmail]:
        """Store the emails whose id is new, due now; returns those (the others were decided before)."""
        if not emails:
            return []
        db = self.database
        with db.transaction():
            marks = ", ".join("?" * len(emails))
            ids = [e.email_id for e in emails]
            query = f"SELECT email_id FROM mailer_emails WHERE email_id IN ({marks})"
            known = {row[0] for row in db.query(query, ids)}
            added = list({e.email_id: e for e in emails if e.email_id not in known}.values())
            db.executemany(
                "INSERT INTO mailer_emails (email_id, kind, org_id, address, subject, body_text, "
                "body_html, person, created_at_ms, attempts, next_attempt_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (email_id) DO NOTHING",
                [(*astuple(e), now_ms, now_ms) for e in added],  # the columns in QueuedEmail's order
            )
        return added

    def remember_referral(self, referral: Referral, person: str | None, now_ms: int) -> None:
        self.database.execute(
            "INSERT INTO mailer_referrals (referral_id, requester_org_id, recipient_org_id, person, "
            "seen_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (referral_id) DO NOTHING",
            (referral.referral_id, referral.requester_org_id, referral.recipient_org_id, person, now_ms),
        )

    def referral(self, referral_id: str) -> Referral | None:
        rows = self.database.query(
            "SELECT requester_org_id, recipient_org_id FROM mailer_referrals WHERE referral_id = ?",
            (referral_id,),
        )
        return Referral(referral_id, str(rows[0][0]), str(rows[0][1])) if rows else None

    def park(self, step: Step, person: str | None, now_ms: int) -> None:
        """Keep a step whose referral the mailer has not seen yet (it reads both topics, in no set order)."""
        self.database.execute(
            "INSERT INTO mailer_waiting_steps (event_id, referral_id, status, signer_org_id, person, "
            "parked_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (step.event_id, step.referral_id, step.status.value, step.signer_org_id, person, now_ms),
        )

    def take_waiting(self, referral_id: str) -> list[Step]:
        """The steps that waited for this referral, removed (the caller decides their emails now)."""
        db = self.database
        with db.transaction():
            rows = db.query(
                "SELECT event_id, status, signer_org_id FROM mailer_waiting_steps WHERE referral_id = ? "
                "ORDER BY parked_at_ms, event_id",
                (referral_id,),
            )
            if rows:
                db.execute("DELETE FROM mailer_waiting_steps WHERE referral_id = ?", (referral_id,))
        return [Step(str(r[0]), referral_id, ReferralStatus(r[1]), r[2]) for r in rows]

    # -- sending (the timer) ---------------------------------------------------------------------------

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[PendingEmail]:
        """The unsent emails due now, oldest first, pushed `lease_ms` ahead so nobody else takes them."""
        db = self.database
        lock = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
        with db.transaction():
            rows = db.query(
                f"SELECT {_COLUMNS} FROM mailer_emails WHERE sent_at_ms IS NULL AND next_attempt_at_ms <= ? "
                f"ORDER BY created_at_ms, email_id LIMIT ?{lock}",
                (now_ms, limit),
            )
            db.executemany(
                "UPDATE mailer_emails SET next_attempt_at_ms = ? WHERE email_id = ?",
                [(now_ms + lease_ms, row[0]) for row in rows],
            )
        return [_pending(row) for row in rows]

    def mark_sent(self, email_id: str, now_ms: int) -> None:
        """The SMTP server took it: only the tombstone stays (nothing to send, nothing of a person)."""
        with self.database.transaction():
            self.database.execute(
                "UPDATE mailer_emails SET sent_at_ms = ?, attempts = attempts + 1, address = NULL, "
                "subject = NULL, body_text = NULL, body_html = NULL, person = NULL, last_error = NULL "
                "WHERE email_id = ?",
                (now_ms, email_id),
            )

    def mark_failed(self, email_id: str, next_attempt_at_ms: int, error: str) -> None:
        """Not sent: one more attempt counted, tried again at `next_attempt_at_ms`."""
        with self.database.transaction():
            self.database.execute(
                "UPDATE mailer_emails SET attempts = attempts + 1, next_attempt_at_ms = ?, last_error = ? "
                "WHERE email_id = ? AND sent_at_ms IS NULL",
                (next_attempt_at_ms, error[:200], email_id),
            )

    def release(self, email_ids: Sequence[str], now_ms: int) -> None:
        """Claimed but not tried (the look ran out of time, or the connection dropped): due again now."""
        with self.database.transaction():
            self.database.executemany(
                "UPDATE mailer_emails SET next_attempt_at_ms = ? WHERE email_id = ? AND sent_at_ms IS NULL",
                [(now_ms, email_id) for email_id in email_ids],
            )

    def pending(self) -> tuple[int, int | None]:
        """(emails not sent, the creation time of the oldest of them)."""
        rows = self.database.query(
            "SELECT COUNT(*), MIN(created_at_ms) FROM mailer_emails WHERE sent_at_ms IS NULL"
        )
        count, oldest = rows[0]
        return int(count), None if oldest is None else int(oldest)

    def state(self, email_id: str) -> EmailState | None:
        rows = self.database.query(
            "SELECT email_id, kind, org_id, attempts, next_attempt_at_ms, sent_at_ms, last_error "
            "FROM mailer_emails WHERE email_id = ?",
            (email_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return EmailState(
            str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), None if r[5] is None else int(r[5]), r[6]
        )

    def states(self) -> list[EmailState]:
        rows = self.database.query("SELECT email_id FROM mailer_emails ORDER BY email_id")
        ids = [str(row[0]) for row in rows]
        return [s for s in (self.state(i) for i in ids) if s is not None]

    def prune(self, now_ms: int) -> int:
        """Drop the tombstones and the waiting steps past their retention; returns how many rows went."""
        db = self.database
        dropped = 0
        with db.transaction():
            for table, column, retention in (
                ("mailer_emails", "sent_at_ms", TOMBSTONE_RETENTION_MS),
                ("mailer_waiting_steps", "parked_at_ms", WAITING_RETENTION_MS),
            ):
                where = f"FROM {table} WHERE {column} < ?"
                dropped += int(db.query(f"SELECT COUNT(*) {where}", (now_ms - retention,))[0][0])
                db.execute(f"DELETE {where}", (now_ms - retention,))
        return dropped


__all__ = ["EmailState", "MailerStore", "PendingEmail", "QueuedEmail"]
