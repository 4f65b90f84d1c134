"""Sending the mail outbox against a real SMTP server (aiosmtpd on a free port): each email delivered
once; with the server down the emails stay, their attempts counted, retried with a doubling delay, and
delivered exactly once when it is back; a refused address stays pending without holding the others;
credentials are used; the message is a text and HTML alternative with a stable Message-ID."""

from __future__ import annotations

import pytest

from services.mailer.metrics import EMAILS_PENDING, OLDEST_PENDING_SECONDS
from services.mailer.sending import KIND_HEADER, Backoff, MailSender, SmtpConfig
from services.mailer.store import MailerStore, QueuedEmail
from tests.conftest import free_port
from tests.support.mail import MailSink
from tests.unit.mailer.conftest import T0, Clock

FROM = "cep-bus <notifications@cep-bus.example.org>"


def config(port: int, **options: object) -> SmtpConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "username": None,
        "password": None,
        "timeout_s": 5.0,
        "from_address": FROM,
    }
    return SmtpConfig(**{**values, **options})  # type: ignore[arg-type]


def queue(store: MailerStore, count: int, kind: str = "new_referral", at: int = T0) -> list[str]:
    emails = [
        QueuedEmail(
            f"00000000-0000-5000-8000-{n:012d}",
            kind,
            "transitions-pro-r84",
            f"accueil{n}@tp-ara.example.org",
            f"Nouvelle orientation à traiter (r-{n})",
            f"Bonjour,\nréférence r-{n}\n",
            f"<p>Bonjour, référence r-{n}</p>",
            f"p-{n}",
        )
        for n in range(count)
    ]
    return [e.email_id for e in store.queue(emails, at)]


def test_each_email_is_delivered_once(store: MailerStore, smtp: MailSink, clock: Clock) -> None:
    ids = queue(store, 3)
    sender = MailSender(store, config(smtp.port), clock_ms=clock)
    assert sorted(sender.send_due().sent) == sorted(ids)
    clock.advance(3600)
    assert sender.send_due().sent == []
    addresses = [f"accueil{n}@tp-ara.example.org" for n in range(3)]
    assert sorted(r.recipients[0] for r in smtp.received) == addresses
    assert all(s.sent_at_ms is not None for s in store.states())
    assert EMAILS_PENDING._value.get() == 0 and OLDEST_PENDING_SECONDS._value.get() == 0


def test_with_the_server_down_emails_wait_and_are_delivered_exactly_once_when_it_is_back(
    store: MailerStore, clock: Clock
) -> None:
    sink = MailSink(free_port()).start()
    sink.stop()  # the SMTP server is down
    ids = queue(store, 3)
    sender = MailSender(store, config(sink.port), Backoff(first_s=5.0, max_s=60.0), clock_ms=clock)
    assert sorted(sender.send_due().failed) == sorted(ids)
    assert [(s.attempts, s.next_attempt_at_ms, s.last_error) for s in store.states()] == [
        (1, T0 + 5000, "connection")
    ] * 3
    assert EMAILS_PENDING._value.get() == 3
    clock.advance(4)
    assert sender.send_due().failed == []  # not due yet: no attempt counted
    clock.advance(1)
    assert len(sender.send_due().failed) == 3  # second attempt, the delay doubles
    assert {(s.attempts, s.next_attempt_at_ms) for s in store.states()} == {(2, T0 + 5000 + 10_000)}
    assert OLDEST_PENDING_SECONDS._value.get() == 5.0
    sink.start()  # back, on the same port
    try:
        clock.advance(9)
        assert sender.send_due().sent == []
        clock.advance(1)
        assert sorted(sender.send_due().sent) == sorted(ids)
        for _ in range(3):
            clock.advance(120)
            sender.send_due()
        assert sorted(r.recipients for r in sink.received) == [
            (f"accueil{n}@tp-ara.example.org",) for n in range(3)
        ]  # each exactly once
        assert {(s.attempts, s.sent_at_ms is not None) for s in store.states()} == {(3, True)}
        assert EMAILS_PENDING._value.get() == 0
    finally:
        sink.stop()


def test_a_refused_address_stays_pending_and_the_others_go(store: MailerStore, clock: Clock) -> None:
    ids = queue(store, 3)
    with MailSink(free_port(), refuse=frozenset({"accueil1@tp-ara.example.org"})) as sink:
        report = MailSender(store, config(sink.port), clock_ms=clock).send_due()
        assert report.failed == [ids[1]] and sorted(report.sent) == sorted([ids[0], ids[2]])
        refused = store.state(ids[1])
        assert refused is not None and refused.last_error == "refused" and refused.sent_at_ms is None
        assert len(sink.received) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_are_used_and_the_message_is_text_and_html(store: MailerStore, clock: Clock) -> None:
    [email_id] = queue(store, 1, kind="status_changed")
    with MailSink(free_port(), login=("cep-bus", "s3cret")) as sink:
        wrong = MailSender(store, config(sink.port, username="cep-bus", password="wrong"), clock_ms=clock)
        assert wrong.send_due().failed == [email_id]
        state = store.state(email_id)
        assert state is not None and state.last_error == "authentication"
        clock.advance(3600)
        right = MailSender(store, config(sink.port, username="cep-bus", password="s3cret"), clock_ms=clock)
        assert right.send_due().sent == [email_id]
        [received] = sink.received
    message = received.message
    assert message["Message-ID"] == f"<{email_id}@cep-bus.example.org>"
    assert message[KIND_HEADER] == "status_changed" and message["Auto-Submitted"] == "auto-generated"
    assert message["From"] == FROM and message["To"] == "accueil0@tp-ara.example.org"
    assert message["Subject"] == "Nouvelle orientation à traiter (r-0)"
    assert received.text().splitlines() == ["Bonjour,", "référence r-0"]
    assert "<p>Bonjour, référence r-0</p>" in received.html()


def test_one_look_starts_no_email_after_its_budget(store: MailerStore, smtp: MailSink, clock: Clock) -> None:
    ids = queue(store, 4)
    sender = MailSender(store, config(smtp.port), batch_max=3, budget_s=0.0, clock_ms=clock)
    report = sender.send_due()
    assert report.sent == ids[:1] and report.released == ids[1:3]  # the fourth was not even claimed
    assert {s.attempts for s in store.states() if s.sent_at_ms is None} == {0}  # released: no attempt
    assert sender.send_due().sent == ids[1:2]
