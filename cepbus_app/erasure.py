"""`cep-bus erase --person P`: a person's right to erasure, across every store of the bus.

Every store declares what each of its tables holds of a person and how erasure reaches it
(`SqlStore.personal_data`, checked against the tables each store really creates by
tests/unit/runtime/test_personal_data_declarations.py); this walks the stores and has each perform its
declared erasure (`SqlStore.erase_person`): destroy the person's key (what is sealed under it becomes
noise), delete or blank the rows about them (what waits in an outbox, a referral, a dead letter, the
clear columns of an intake), then purge the files (SQLite WAL checkpointed and truncated, secure_delete
on; PostgreSQL vacuumed), so that neither the person's data nor the destroyed keys remain on disk. The
ledger's erasure is its own: it destroys the key and records the erasure as an entry naming only the key
id, so every proof still verifies. Copies on Kafka topics expire with the topics' retention
(docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cepbus.runtime.sqldb import ErasureCount, SqlStore
from services.deadletters.store import DeadLetterStore
from services.ledger.store import SqlLedgerStore
from services.mailer.store import MailerStore
from services.notifier.store import NotifierStore
from services.router.referrals.store import ReferralStore
from services.router.store import RouterStore

#: Every store of the bus that can hold something of a person, by the name its URL is given under.
STORES: tuple[tuple[str, type[SqlStore]], ...] = (
    ("ledger", SqlLedgerStore),
    ("router", RouterStore),
    ("referrals", ReferralStore),
    ("notifier", NotifierStore),
    ("deadletters", DeadLetterStore),
    ("mailer", MailerStore),
)


@dataclass(frozen=True)
class ErasureReport:
    person: str
    ledger_erasure_index: int | None  # None: the ledger held nothing of the person
    router_intakes: int
    referrals: int
    dead_letters: int
    outbox_rows: int  # events for the person that were waiting to be sent, in any store's outbox
    stores: dict[str, ErasureCount] = field(default_factory=dict)

    def summary(self) -> str:
        ledger = (
            f"key destroyed, erasure recorded at index {self.ledger_erasure_index}"
            if self.ledger_erasure_index is not None
            else "no key (nothing of the person)"
        )
        keys = sum(count.keys_destroyed for count in self.stores.values())
        return (
            f"erased {self.person}: ledger {ledger}; router {self.router_intakes} intake(s); "
            f"referrals {self.referrals}; dead letters {self.dead_letters}; "
            f"unsent events {self.outbox_rows}; keys destroyed {keys} in {len(self.stores)} stores"
        )


def erase_person(
    person: str,
    *,
    ledger_url: str,
    router_url: str,
    referrals_url: str,
    notifier_url: str,
    deadletters_url: str,
    mailer_url: str | None = None,
) -> ErasureReport:
    """Erase `person` from every store of `STORES`, each at its URL (the mailer's when given: a bus may
    run without it)."""
    urls = {
        "ledger": ledger_url,
        "router": router_url,
        "referrals": referrals_url,
        "notifier": notifier_url,
        "deadletters": deadletters_url,
        "mailer": mailer_url,
    }
    counts: dict[str, ErasureCount] = {}
    for name, store_class in STORES:
        url = urls[name]
        if url is None:
            continue
        with store_class(url) as store:
            counts[name] = store.erase_person(person)
    return ErasureReport(
        person,
        ledger_erasure_index=counts["ledger"].erasure_entry,
        router_intakes=counts["router"].of("router_intakes"),
        referrals=counts["referrals"].of("referrals"),
        dead_letters=counts["deadletters"].of("ledger_dead_letters"),
        outbox_rows=sum(
            rows
            for count in counts.values()
            for table, rows in count.rows.items()
            if table.endswith("_outbox")
        ),
        stores=counts,
    )
