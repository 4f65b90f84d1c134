"""`cep-bus erase --person P`: a person's right to erasure, across every store of the bus.

The ledger destroys the person's key (its leaves keep their ciphertext, so every proof still verifies)
and records the erasure; the router's and the referral stores destroy their keys for the person and
blank the pseudonym; the dead-letter archive (services/deadletters) likewise. Each store then purges
its files (SQLite WAL checkpointed and truncated, secure_delete on; PostgreSQL vacuumed), so that neither
the person's data nor the destroyed keys remain on disk. Copies on Kafka topics expire with the topics'
retention (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.deadletters.store import DeadLetterStore
from services.ledger.store import SqlLedgerStore
from services.router.referrals.store import ReferralStore
from services.router.store import RouterStore


@dataclass(frozen=True)
class ErasureReport:
    person: str
    ledger_erasure_index: int | None  # None: the ledger held nothing of the person
    router_intakes: int
    referrals: int
    dead_letters: int

    def summary(self) -> str:
        ledger = (
            f"key destroyed, erasure recorded at index {self.ledger_erasure_index}"
            if self.ledger_erasure_index is not None
            else "no key (nothing of the person)"
        )
        return (
            f"erased {self.person}: ledger {ledger}; router {self.router_intakes} intake(s); "
            f"referrals {self.referrals}; dead letters {self.dead_letters}"
        )


def erase_person(
    person: str, *, ledger_url: str, router_url: str, referrals_url: str, deadletters_url: str
) -> ErasureReport:
    with SqlLedgerStore(ledger_url) as ledger:
        try:
            index: int | None = ledger.erase(person)
        except KeyError:
            index = None
    with DeadLetterStore(deadletters_url) as dead_letters:
        letters = dead_letters.erase(person)
    router = RouterStore(router_url)
    try:
        intakes = router.erase(person)
    finally:
        router.close()
    referral_store = ReferralStore(referrals_url)
    try:
        referrals = referral_store.erase(person)
    finally:
        referral_store.close()
    return ErasureReport(person, index, intakes, referrals, letters)
