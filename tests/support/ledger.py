"""Ledger records as the ledger service builds them from a delivered event, for tests that fill a ledger
store directly (without the writer's route): made by the writer's own `new_record` (its facts; with its
author's statement proof when signed by its producer's development key, as the runtime admits it); and
a partner's applied update as the ledger holds it, the update with its verdict."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cepbus.auditlog.note import Signer
from cepbus.contract import codec
from cepbus.contract.models import (
    Event,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateVerdict,
    UpdateVerdict,
    new_envelope,
)
from cepbus.contract.statements import statement_digest
from cepbus.reference.directory import load_directory
from services.ledger.directory_log import record_directory
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore
from services.ledger.writer import new_record
from tests.support.authorship import received
from tests.support.factories import update


def ledger_record(
    event: Event,
    topic: str = "cep.intake.registered",
    *,
    occurred_ms: int | None = None,
    person: str | None = None,
    signed: bool = False,
) -> NewRecord:
    """`signed`: with its author's statement proof, as the ledger records it from the bus (then open the
    store with `open_ledger`, which logs the directory the proof verifies against); else as from before
    statements, which store-level tests that need no author use."""
    admitted = received(event, topic)
    record = new_record(admitted if signed else replace(admitted, author=None))
    return replace(
        record,
        occurred_at_ms=record.occurred_at_ms if occurred_ms is None else occurred_ms,
        person_pseudonym=person or record.person_pseudonym,
    )


def applied_update(
    referral: ReferralRequested, status: ReferralStatus, at: datetime, reason_code: str | None = None
) -> tuple[ReferralStatusChanged, ReferralUpdateVerdict]:
    """The recipient's update and the router's verdict applying it, naming it by its statement digest:
    what the report needs in the ledger to count the step."""
    step = update(referral, status, sender=referral.recipient_org_id, reason_code=reason_code, at=at)
    verdict = ReferralUpdateVerdict(
        envelope=new_envelope(
            ReferralUpdateVerdict,
            producer_org_id="cep-bus-router",
            causation=referral.envelope,
            occurred_at=at,
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"verdict:{step.event_id}"),
        ),
        update_event_id=str(step.event_id),
        referral_id=referral.referral_id,
        verdict=UpdateVerdict.APPLIED,
        status=status,
        signer_org_id=referral.recipient_org_id,
        claimed_occurred_at=at,
        update_digest=statement_digest(codec.encode(step)),
    )
    return step, verdict


def open_ledger(url: str | Path, **options: Any) -> SqlLedgerStore:
    """A ledger store as the ledger service opens it: the directory version it runs with logged first
    (`services.ledger.directory_log`), so that every statement after it verifies offline."""
    store = SqlLedgerStore(url, **options)
    record_directory(store, load_directory())
    return store


def ledger_service_env(tmp_path: Path, monkeypatch: Any, origin: str) -> tuple[Path, Signer]:
    """The environment `cep-bus ledger ...` commands read: a SQLite ledger under `tmp_path` and a
    checkpoint key of `origin`, written 0600 as production asks. Returns the database path and the key."""
    db, key = tmp_path / "ledger.db", tmp_path / "signing.key"
    signer = Signer.generate(origin)
    key.write_text(str(signer) + "\n")
    key.chmod(0o600)
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", origin)
    return db, signer


def append_recorded(url: str, events: Iterable[tuple[Any, datetime]]) -> None:
    """Append each event as the ledger recorded it at the given time (its own clock)."""
    now = [0]
    with SqlLedgerStore(url, clock=lambda: now[0]) as store:
        for event, recorded in events:
            now[0] = int(recorded.timestamp() * 1000)
            store.append([ledger_record(event)])
