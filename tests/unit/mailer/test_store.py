"""The mail outbox, on SQLite and PostgreSQL: an email id is stored once; a claim holds the due emails
for a lease; a failure counts an attempt and delays the next; a sent email keeps only its tombstone;
erasure removes what waits for the person and their referrals; old tombstones go."""

from __future__ import annotations

from cepbus.contract.models import ReferralStatus
from services.mailer.decisions import Referral, Step
from services.mailer.store import TOMBSTONE_RETENTION_MS, MailerStore, QueuedEmail
from tests.unit.mailer.conftest import T0


def email(n: int, person: str | None = "p-1", kind: str = "new_referral") -> QueuedEmail:
    org, address = "transitions-pro-r84", f"a{n}@tp.example.org"
    return QueuedEmail(f"e-{n}", kind, org, address, f"s{n}", f"t{n}", f"<p>h{n}</p>", person)


def test_an_email_is_stored_once_whatever_the_redeliveries(store: MailerStore) -> None:
    assert [e.email_id for e in store.queue([email(1), email(2)], T0)] == ["e-1", "e-2"]
    assert [e.email_id for e in store.queue([email(2), email(3), email(3)], T0 + 5)] == ["e-3"]
    assert store.pending() == (3, T0)


def test_a_claim_holds_due_emails_for_a_lease_and_a_release_gives_them_back(store: MailerStore) -> None:
    store.queue([email(1), email(2)], T0)
    claimed = store.claim_due(T0, 10, lease_ms=60_000)
    assert [e.email_id for e in claimed] == ["e-1", "e-2"] and claimed[0].address == "a1@tp.example.org"
    assert store.claim_due(T0 + 1000, 10, lease_ms=60_000) == []  # another replica takes nothing meanwhile
    store.release(["e-2"], T0 + 1000)
    assert [e.email_id for e in store.claim_due(T0 + 1000, 10, lease_ms=60_000)] == ["e-2"]
    lease_over = store.claim_due(T0 + 60_500, 10, lease_ms=60_000)
    assert [e.email_id for e in lease_over] == ["e-1"]


def test_a_failure_counts_an_attempt_and_a_success_leaves_a_tombstone(store: MailerStore) -> None:
    store.queue([email(1)], T0)
    [claimed] = store.claim_due(T0, 10, 60_000)
    store.mark_failed(claimed.email_id, T0 + 5000, "connection")
    state = store.state("e-1")
    assert state is not None and (state.attempts, state.next_attempt_at_ms, state.last_error) == (
        1,
        T0 + 5000,
        "connection",
    )
    assert store.claim_due(T0 + 4999, 10, 60_000) == []
    [again] = store.claim_due(T0 + 5000, 10, 60_000)
    assert again.attempts == 1
    store.mark_sent("e-1", T0 + 5100)
    state = store.state("e-1")
    assert state is not None and state.sent_at_ms == T0 + 5100 and state.attempts == 2
    assert store.pending() == (0, None)
    rows = store.database.query(
        "SELECT address, subject, body_text, body_html, person FROM mailer_emails WHERE email_id = 'e-1'"
    )
    assert rows == [(None, None, None, None, None)]  # nothing to send, nothing of a person
    assert store.queue([email(1)], T0 + 6000) == []  # the tombstone keeps a redelivery out


def test_referrals_and_steps_waiting_for_them(store: MailerStore) -> None:
    referral = Referral("r-1", "cep-r84", "transitions-pro-r84")
    assert store.referral("r-1") is None
    store.remember_referral(referral, "p-1", T0)
    store.remember_referral(Referral("r-1", "x-other", "y-other"), "p-1", T0 + 1)  # the first stays
    assert store.referral("r-1") == referral
    step = Step("v-1", "r-2", ReferralStatus.ACCEPTED, "transitions-pro-r84")
    store.park(step, "p-2", T0)
    store.park(step, "p-2", T0 + 1)
    assert store.take_waiting("r-2") == [step]
    assert store.take_waiting("r-2") == []


def test_erasure_removes_what_waits_for_the_person_only(store: MailerStore) -> None:
    store.queue([email(1, "p-gone"), email(2, "p-gone"), email(3, "p-stays")], T0)
    store.claim_due(T0, 1, 60_000)
    store.mark_sent("e-1", T0)  # sent: a tombstone without the person, which erasure leaves
    store.remember_referral(Referral("r-1", "cep-r84", "transitions-pro-r84"), "p-gone", T0)
    store.park(Step("v-1", "r-9", ReferralStatus.ACCEPTED, None), "p-gone", T0)
    count = store.erase_person("p-gone")
    assert count.rows == {"mailer_emails": 1, "mailer_referrals": 1, "mailer_waiting_steps": 1}
    assert {s.email_id for s in store.states()} == {"e-1", "e-3"} and store.referral("r-1") is None


def test_old_tombstones_go(store: MailerStore) -> None:
    store.queue([email(1), email(2)], T0)
    store.claim_due(T0, 10, 60_000)
    store.mark_sent("e-1", T0)
    assert store.prune(T0 + TOMBSTONE_RETENTION_MS - 1) == 0
    assert store.prune(T0 + TOMBSTONE_RETENTION_MS + 1) == 1
    assert [s.email_id for s in store.states()] == ["e-2"]  # never an email not sent
