"""The router's state in a real database: what it must remember between events.

A choice arrives minutes or days after its intake, and a level-2 start later still; the router then
needs the intake's profile (for the referral), whether a notice was issued and what the person
chose. Broker-side state (Faust tables) is not trustworthy on Tansu (DEVELOPERS.md), so the state
lives in SQLite (one host, the default) or PostgreSQL (shared, durable), like the ledger's store.

Every write is keyed by the event id that caused it and written with `ON CONFLICT DO NOTHING`, so an
at-least-once redelivery changes nothing. Queries use `?` placeholders, translated for psycopg.

The profile (with its BOETH flag) and the rules that fired on it (which reveal a disability) are kept
sealed under the person's key (`cepbus.runtime.vault.PersonVault`); erasure (`personal_data`, run by
`SqlStore.erase_person`) destroys that key, deletes what waits in the outbox for the person and blanks
what stays in clear about them (pseudonym, purpose, démission date, journey id, the operator kind chosen),
so nothing of the person stays readable in the database files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cepbus.contract.models import (
    BreachKind,
    Choice,
    ChoiceRecorded,
    IntakeRegistered,
    NoticeIssued,
    NoticeObligation,
    OrganisationKind,
    Profile,
    ServiceLevel,
    ServiceLevelStarted,
)
from cepbus.runtime.directory_history import directory_history_personal_data, directory_history_schema
from cepbus.runtime.outbox import Outbox, outbox_personal_data, outbox_schema
from cepbus.runtime.silence import SilenceSeed
from cepbus.runtime.sqldb import Dialect, PersonalData, Row, SqlStore, StoreOptions
from cepbus.runtime.vault import ErasedData, PersonVault, person_keys_personal_data

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS router_intakes (
        intake_event_id TEXT PRIMARY KEY,
        person_pseudonym TEXT,
        correlation_id TEXT NOT NULL,
        operator_id TEXT NOT NULL,
        operator_kind TEXT NOT NULL,
        region_code TEXT NOT NULL,
        departement_code TEXT NOT NULL,
        occurred_at_ms BIGINT NOT NULL,
        profile_json TEXT NOT NULL,
        status TEXT NOT NULL,
        notice_due INTEGER NOT NULL,
        rules_json TEXT NOT NULL,
        ruleset_version TEXT NOT NULL,
        reference_version TEXT NOT NULL,
        purpose TEXT,
        cep_requested_on TEXT,
        reminded_at_ms BIGINT
    )
    """,
    "CREATE INDEX IF NOT EXISTS router_intakes_person ON router_intakes (person_pseudonym)",
    """
    CREATE TABLE IF NOT EXISTS router_notices (
        notice_event_id TEXT PRIMARY KEY,
        intake_event_id TEXT NOT NULL,
        occurred_at_ms BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS router_notices_intake ON router_notices (intake_event_id)",
    """
    CREATE TABLE IF NOT EXISTS router_choices (
        choice_event_id TEXT PRIMARY KEY,
        intake_event_id TEXT NOT NULL,
        choice TEXT NOT NULL,
        chosen_operator_kind TEXT,
        consent_to_share INTEGER NOT NULL,
        occurred_at_ms BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS router_choices_intake ON router_choices (intake_event_id)",
    """
    CREATE TABLE IF NOT EXISTS router_service_levels (
        event_id TEXT PRIMARY KEY,
        intake_event_id TEXT NOT NULL,
        operator_id TEXT NOT NULL,
        level TEXT NOT NULL,
        occurred_at_ms BIGINT NOT NULL,
        breach TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS router_service_levels_intake ON router_service_levels (intake_event_id)",
    # facts about the store itself: `listening_since_ms`, when it first opened (operator silence)
    "CREATE TABLE IF NOT EXISTS router_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
#: Columns added since the first release (a store created before gains them, keeping its rows).
_ADDED_COLUMNS = {"router_intakes": [("notice_obligation", "TEXT")]}
_SEALED = "sealed:"  # prefix of a sealed value in a TEXT column (then hex of the vault blob)
_ERASED_PROFILE = Profile()

_INTAKE_COLUMNS = (
    "intake_event_id, person_pseudonym, correlation_id, operator_id, operator_kind, region_code, "
    "departement_code, occurred_at_ms, profile_json, status, notice_due, rules_json, ruleset_version, "
    "reference_version, purpose, cep_requested_on, reminded_at_ms, notice_obligation"
)


def to_ms(moment: Any) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class IntakeRecord:
    """What the router keeps of an intake and its decision."""

    intake_event_id: str
    person_pseudonym: str | None
    correlation_id: str
    operator_id: str
    operator_kind: OrganisationKind
    region_code: str
    departement_code: str
    occurred_at_ms: int
    profile: Profile
    status: str
    notice_due: bool
    rules: tuple[str, ...]
    ruleset_version: str
    reference_version: str
    purpose: str | None
    cep_requested_on: date | None
    reminded_at_ms: int | None
    notice_obligation: NoticeObligation | None = None  # None: no notice due, or a store from before

    @property
    def notice_is_obligation(self) -> bool:
        """A level-2 start without informed choice is a breach only for an obligatory notice (an intake
        recorded before obligations were, counts as one, as it did then)."""
        return self.notice_due and self.notice_obligation != NoticeObligation.INFORMATIVE


@dataclass(frozen=True)
class ChoiceRecord:
    choice_event_id: str
    intake_event_id: str
    choice: Choice
    chosen_operator_kind: OrganisationKind | None
    consent_to_share: bool
    occurred_at_ms: int


@dataclass(frozen=True)
class ServiceLevelRecord:
    event_id: str
    intake_event_id: str
    operator_id: str
    level: ServiceLevel
    occurred_at_ms: int
    breach: BreachKind | None


@dataclass(frozen=True)
class AwaitingChoice:
    """An intake whose notice was issued and for which no choice is recorded yet, nor a reminder sent."""

    intake: IntakeRecord
    notice_issued_at_ms: int


_PG_SCHEMA_LOCK_KEY = 0x6365_7062_7573_02  # "cepbus" + 2: serialises concurrent schema creation


class RouterStore(SqlStore):
    """The router's state in one database (a SQLite file in WAL mode, so the demo and the CLI can read it
    while the router writes, or PostgreSQL); thread-safe (the database serialises its connection)."""

    store_name = "router"

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__(
            url, StoreOptions(busy_timeout_s=busy_timeout_s, schema_lock_key=_PG_SCHEMA_LOCK_KEY)
        )
        db = self._db
        self._vault = PersonVault(db, "router")
        self.outbox = Outbox(db, "router")  # the events its decisions emit, stored with them
        for table, columns in _ADDED_COLUMNS.items():
            db.add_missing_columns(table, columns)
        with db.transaction():
            db.execute(
                "INSERT INTO router_meta (name, value) VALUES ('listening_since_ms', ?)"
                " ON CONFLICT DO NOTHING",
                (str(time.time_ns() // 1_000_000),),
            )

    def _seal(self, person: str | None, about: str, text: str) -> str:
        if not person:  # every person event carries a pseudonym (models); kept for rows from before
            return text
        return _SEALED + self._vault.seal(person, about, text.encode()).hex()

    def _seal_many(self, person: str | None, items: Sequence[tuple[str, str]]) -> list[str]:
        """`_seal` for several values of one person: their key read once (the hot path of an intake)."""
        if not person:
            return [text for _, text in items]
        sealed = self._vault.seal_many(person, [(about, text.encode()) for about, text in items])
        return [_SEALED + blob.hex() for blob in sealed]

    def _open(self, value: str, about: str) -> str | None:
        """The clear text, or None once the person was erased."""
        if not value.startswith(_SEALED):
            return value
        try:
            return self._vault.open(bytes.fromhex(value[len(_SEALED) :]), about).decode()
        except ErasedData:
            return None

    def _intake_from_row(self, row: Row) -> IntakeRecord:
        (
            intake_id,
            person,
            correlation,
            operator_id,
            kind,
            region,
            departement,
            occurred,
            profile_json,
            status,
            notice_due,
            rules_json,
            ruleset_version,
            reference_version,
            purpose,
            requested_on,
            reminded,
            obligation,
        ) = row
        profile = self._open(profile_json, f"{intake_id}/profile")
        rules = self._open(rules_json, f"{intake_id}/rules")
        return IntakeRecord(
            intake_event_id=intake_id,
            person_pseudonym=person,
            correlation_id=correlation,
            operator_id=operator_id,
            operator_kind=OrganisationKind(kind),
            region_code=region,
            departement_code=departement,
            occurred_at_ms=int(occurred),
            profile=Profile.model_validate_json(profile) if profile is not None else _ERASED_PROFILE,
            status=status,
            notice_due=bool(notice_due),
            rules=tuple(json.loads(rules)) if rules is not None else (),
            ruleset_version=ruleset_version,
            reference_version=reference_version,
            purpose=purpose,
            cep_requested_on=date.fromisoformat(requested_on) if requested_on else None,
            reminded_at_ms=int(reminded) if reminded is not None else None,
            notice_obligation=NoticeObligation(obligation) if obligation else None,
        )

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        """Erasure keeps the intake rows (operator, place, times, whether a notice was due: the
        regulation's own facts, which the router's checks and operator silence read) and removes the
        person from them; statements that find the person's intakes run before the pseudonym is blanked."""
        of_person = (
            "intake_event_id IN (SELECT intake_event_id FROM router_intakes WHERE person_pseudonym = ?)"
        )
        return (
            outbox_personal_data("router"),
            PersonalData(
                "router_choices",
                "the person's choice after the notice (stay, switch, undecided; consent to share) and the "
                "kind of operator they chose, which for Cap emploi reveals a disability: blanked",
                "blank_column",
                where=of_person,
                columns=("chosen_operator_kind",),
            ),
            PersonalData(
                "router_intakes",
                "the profile (BOETH flag, birth year, status) and the rules that fired on it, sealed",
                "destroy_key",
            ),
            PersonalData(
                "router_intakes",
                "in clear: the pseudonym, the purpose and démission date (a resignation to retrain), the "
                "journey's correlation id (the operator's free text): blanked (the id becomes the intake's)",
                "blank_column",
                where="person_pseudonym = ?",
                columns=("person_pseudonym", "cep_requested_on", "purpose"),
                neutral=(("correlation_id", "intake_event_id"),),
            ),
            PersonalData(
                "router_notices", "that a notice was issued for an intake, and when", "nothing_personal"
            ),
            PersonalData(
                "router_service_levels",
                "the level of service an operator says it started for an intake, when, and whether it was "
                "a breach: the operator's own statement",
                "nothing_personal",
            ),
            PersonalData(
                "router_meta", "facts about the store itself (since when it listens)", "nothing_personal"
            ),
            person_keys_personal_data("router"),
            directory_history_personal_data("router"),
        )

    # -- writes (idempotent on the causing event id) ----------------------------------------------

    def record_intake(
        self,
        intake: IntakeRegistered,
        *,
        status: str,
        notice_due: bool,
        rules: Sequence[str],
        ruleset_version: str,
        reference_version: str,
        notice_obligation: NoticeObligation | None = None,
    ) -> None:
        envelope = intake.envelope
        person, intake_id = envelope.person_pseudonym, str(envelope.event_id)
        with self._db.transaction():
            if self._db.query("SELECT 1 FROM router_intakes WHERE intake_event_id = ?", (intake_id,)):
                return  # a redelivery: sealed once
            profile, fired = self._seal_many(
                person,
                [
                    (f"{intake_id}/profile", intake.profile.model_dump_json()),
                    (f"{intake_id}/rules", json.dumps(list(rules))),
                ],
            )
            self._db.execute(
                f"INSERT INTO router_intakes ({_INTAKE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) "
                "ON CONFLICT (intake_event_id) DO NOTHING",
                (
                    str(envelope.event_id),
                    envelope.person_pseudonym,
                    envelope.correlation_id,
                    intake.operator_id,
                    intake.operator_kind.value,
                    intake.region_code,
                    intake.departement_code,
                    to_ms(envelope.occurred_at),
                    profile,
                    status,
                    int(notice_due),
                    fired,
                    ruleset_version,
                    reference_version,
                    intake.purpose.value if intake.purpose else None,
                    intake.cep_requested_on.isoformat() if intake.cep_requested_on else None,
                    notice_obligation.value if notice_obligation else None,
                ),
            )

    def record_notice(self, notice: NoticeIssued) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO router_notices (notice_event_id, intake_event_id, occurred_at_ms) "
                "VALUES (?, ?, ?) ON CONFLICT (notice_event_id) DO NOTHING",
                (str(notice.event_id), notice.intake_event_id, to_ms(notice.envelope.occurred_at)),
            )

    def record_choice(self, choice: ChoiceRecorded) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO router_choices (choice_event_id, intake_event_id, choice, chosen_operator_kind, "
                "consent_to_share, occurred_at_ms) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (choice_event_id) DO NOTHING",
                (
                    str(choice.event_id),
                    choice.intake_event_id,
                    choice.choice.value,
                    choice.chosen_operator_kind.value if choice.chosen_operator_kind else None,
                    int(choice.consent_to_share),
                    to_ms(choice.envelope.occurred_at),
                ),
            )

    def record_service_level(self, started: ServiceLevelStarted, breach: BreachKind | None) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO router_service_levels (event_id, intake_event_id, operator_id, level, "
                "occurred_at_ms, breach) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                (
                    str(started.event_id),
                    started.intake_event_id,
                    started.operator_id,
                    started.level.value,
                    to_ms(started.envelope.occurred_at),
                    breach.value if breach else None,
                ),
            )

    def mark_reminded(self, intake_event_id: str, at_ms: int) -> None:
        """Only the first reminder counts: a second call keeps the first time."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE router_intakes SET reminded_at_ms = ? "
                "WHERE intake_event_id = ? AND reminded_at_ms IS NULL",
                (at_ms, intake_event_id),
            )

    # -- reads --------------------------------------------------------------------------------------

    def intake(self, intake_event_id: str) -> IntakeRecord | None:
        rows = self._db.query(
            f"SELECT {_INTAKE_COLUMNS} FROM router_intakes WHERE intake_event_id = ?", (intake_event_id,)
        )
        return self._intake_from_row(rows[0]) if rows else None

    def intakes_of(self, person_pseudonym: str) -> list[IntakeRecord]:
        rows = self._db.query(
            f"SELECT {_INTAKE_COLUMNS} FROM router_intakes WHERE person_pseudonym = ? "
            "ORDER BY occurred_at_ms, intake_event_id",
            (person_pseudonym,),
        )
        return [self._intake_from_row(row) for row in rows]

    def notices_at_ms(self, intake_event_id: str) -> list[int]:
        """When each notice for this intake was issued, earliest first."""
        rows = self._db.query(
            "SELECT occurred_at_ms FROM router_notices WHERE intake_event_id = ? ORDER BY occurred_at_ms",
            (intake_event_id,),
        )
        return [int(row[0]) for row in rows]

    def choices(self, intake_event_id: str) -> list[ChoiceRecord]:
        """The choices recorded for an intake, in the order they were made."""
        rows = self._db.query(
            "SELECT choice_event_id, intake_event_id, choice, chosen_operator_kind, consent_to_share, "
            "occurred_at_ms FROM router_choices WHERE intake_event_id = ? "
            "ORDER BY occurred_at_ms, choice_event_id",
            (intake_event_id,),
        )
        return [
            ChoiceRecord(
                choice_event_id=row[0],
                intake_event_id=row[1],
                choice=Choice(row[2]),
                chosen_operator_kind=OrganisationKind(row[3]) if row[3] else None,
                consent_to_share=bool(row[4]),
                occurred_at_ms=int(row[5]),
            )
            for row in rows
        ]

    def service_levels(self, intake_event_id: str) -> list[ServiceLevelRecord]:
        rows = self._db.query(
            "SELECT event_id, intake_event_id, operator_id, level, occurred_at_ms, breach "
            "FROM router_service_levels WHERE intake_event_id = ? ORDER BY occurred_at_ms, event_id",
            (intake_event_id,),
        )
        return [
            ServiceLevelRecord(
                event_id=row[0],
                intake_event_id=row[1],
                operator_id=row[2],
                level=ServiceLevel(row[3]),
                occurred_at_ms=int(row[4]),
                breach=BreachKind(row[5]) if row[5] else None,
            )
            for row in rows
        ]

    def awaiting_choice(self) -> list[AwaitingChoice]:
        """Intakes with a notice issued, no choice recorded and no reminder sent yet."""
        columns = ", ".join(f"i.{c.strip()}" for c in _INTAKE_COLUMNS.split(","))
        rows = self._db.query(
            f"SELECT {columns}, MIN(n.occurred_at_ms) FROM router_intakes i "
            "JOIN router_notices n ON n.intake_event_id = i.intake_event_id "
            "WHERE i.reminded_at_ms IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM router_choices c WHERE c.intake_event_id = i.intake_event_id) "
            f"GROUP BY {columns} ORDER BY i.intake_event_id"
        )
        return [AwaitingChoice(self._intake_from_row(row[:-1]), int(row[-1])) for row in rows]

    def silence_seed(self) -> SilenceSeed:
        """Each operator's last event the router recorded (an intake, a choice on one of its intakes, a
        service level), and since when this store has listened: operator silence outlives processes."""
        rows = self._db.query(
            """SELECT operator_id, MAX(at) FROM (
                   SELECT operator_id, occurred_at_ms AS at FROM router_intakes
                   UNION ALL SELECT operator_id, occurred_at_ms FROM router_service_levels
                   UNION ALL SELECT i.operator_id, c.occurred_at_ms FROM router_choices c
                       JOIN router_intakes i ON i.intake_event_id = c.intake_event_id
               ) AS seen GROUP BY operator_id"""
        )
        since = self._db.query("SELECT value FROM router_meta WHERE name = 'listening_since_ms'")
        return SilenceSeed(
            {operator: int(at) / 1000 for operator, at in rows if at is not None},
            int(since[0][0]) / 1000 if since else None,
        )

    def known_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these notice, choice or intake event ids the router has recorded (for the demo,
        which waits for the router's state to settle before it publishes service levels)."""
        wanted = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for table, column in (
                ("router_intakes", "intake_event_id"),
                ("router_notices", "notice_event_id"),
                ("router_choices", "choice_event_id"),
            ):
                rows = self._db.query(f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", chunk)
                found.update(row[0] for row in rows)
        return found

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return [
            *_SCHEMA,
            *PersonVault.schema("router", dialect),
            *outbox_schema("router", dialect),
            *directory_history_schema("router", dialect),
        ]
