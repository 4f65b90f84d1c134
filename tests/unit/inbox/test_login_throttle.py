"""Repeated failed log-ins are slowed, then refused, per client address and per organisation (issue #23,
finding 10: 40 wrong log-ins in 1.7 s, none slowed). Played as the attack, on the inbox against the
router's read side (`harness.py`), with a clock the test moves."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import structlog
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.inbox.settings import InboxSettings
from services.inbox.throttle import LOCKED, THROTTLED, LoginThrottle
from tests.support.factories import MONDAY
from tests.support.fakes import MovableClock
from tests.unit.inbox.harness import OTHER, PARTNER, Harness, log_in

ATTACKER, COLLEAGUE = "203.0.113.7", "198.51.100.20"


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("cepbus_inbox_login_refused_total", {"reason": reason}) or 0.0


def alert(html: str) -> str:
    """The log-in page's message."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', html, re.S)
    assert found, "no message on the page"
    return found.group(1)


def browser(inbox: TestClient, address: str) -> TestClient:
    """Another browser on the same inbox (the same process, hence the same limiter), from `address`."""
    return TestClient(inbox.app, client=(address, 50000))


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(MONDAY)


def test_forty_wrong_logins_in_a_row_are_slowed_then_refused(harness: Harness, clock: MovableClock) -> None:
    inbox = harness.inbox(ATTACKER, now=clock)
    before = {reason: refused(reason) for reason in (THROTTLED, LOCKED)}
    with structlog.testing.capture_logs() as logs:
        answers = [log_in(inbox, PARTNER, f"guess-{n}") for n in range(40)]
    codes = [answer.status_code for answer in answers]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 35
    # the read side (where a token is checked) was asked five times, never again
    assert len([call for call in harness.read_side.calls if call[1] and call[1].startswith("guess-")]) == 5
    throttled, locked = answers[5], answers[-1]
    assert (
        "patientez 1 seconde avant de réessayer" in throttled.text and throttled.headers["Retry-After"] == "1"
    )
    assert "la connexion est bloquée pendant 15 minutes" in locked.text
    assert locked.headers["Retry-After"] == "900"
    assert all("Traceback" not in answer.text and "<form" in answer.text for answer in answers)
    # 14 attempts too soon (the 6th to the 19th); the 20th, the 20th failure, locks: it and the 20 after it
    assert refused(THROTTLED) - before[THROTTLED] == 14
    assert refused(LOCKED) - before[LOCKED] == 21
    locks = [line for line in logs if line["event"] == "inbox_login_locked"]
    assert [(line["key"], line["value"]) for line in locks] == [
        ("address", ATTACKER),
        ("organisation", PARTNER),
    ]


def test_a_guesser_who_waits_as_told_waits_twice_as_long_each_time_and_is_locked_all_the_same(
    harness: Harness, clock: MovableClock
) -> None:
    """Waiting out each delay (1, 2, 4... seconds, at most 60) gets each guess checked, and the lock at
    the 20th failure: 20 guesses per window, whatever the pace (the 20 fit in about 10 minutes)."""
    inbox = harness.inbox(ATTACKER, now=clock)
    for failures in range(1, 21):
        assert log_in(inbox, PARTNER, f"guess-{failures}").status_code == 401, failures
        if failures >= 5:
            clock.now += timedelta(seconds=min(60, 2 ** (failures - 5)))
    assert log_in(inbox, PARTNER, f"dev-{PARTNER}").status_code == 429  # locked, the right token too


@pytest.mark.parametrize(("failures", "wait"), [(4, 0), (5, 1), (6, 2), (7, 4), (10, 32), (11, 60), (18, 60)])
def test_the_delay_doubles_with_each_failure_up_to_a_minute(failures: int, wait: int) -> None:
    throttle = LoginThrottle(clock=lambda: 0.0)
    keys = throttle.keys(ATTACKER, PARTNER)
    for _ in range(failures):
        throttle.failed(keys)
    held = throttle.check(keys)
    assert (held.retry_after_s if held else 0) == wait
    assert held is None or held.reason == THROTTLED


def test_the_right_token_is_refused_while_locked_and_the_lock_expires(
    harness: Harness, clock: MovableClock
) -> None:
    harness.refer()
    inbox = harness.inbox(ATTACKER, now=clock)
    for n in range(25):
        log_in(inbox, PARTNER, f"guess-{n}")
    asked = len(harness.read_side.calls)
    wrong, right = log_in(inbox, PARTNER, "guess-x"), log_in(inbox, PARTNER, f"dev-{PARTNER}")
    assert right.status_code == wrong.status_code == 429 and "bloquée" in right.text
    # nothing tells the right token from a wrong one
    assert (
        alert(right.text) == alert(wrong.text)
        and right.headers["Retry-After"] == wrong.headers["Retry-After"]
    )
    assert len(harness.read_side.calls) == asked and inbox.get("/referrals").url.path == "/login"
    clock.now += timedelta(seconds=899)
    assert log_in(inbox, PARTNER, f"dev-{PARTNER}").status_code == 429
    clock.now += timedelta(seconds=2)  # the cool-down is over
    assert log_in(inbox, PARTNER, f"dev-{PARTNER}").url.path == "/referrals"  # logged in at last


def test_the_lock_holds_its_address_and_its_organisation_only(harness: Harness, clock: MovableClock) -> None:
    inbox = harness.inbox(ATTACKER, now=clock)
    for n in range(20):
        log_in(inbox, PARTNER, f"guess-{n}")
    colleague = browser(inbox, COLLEAGUE)
    # another organisation from another address: as if nothing happened
    assert log_in(colleague, OTHER, f"dev-{OTHER}").status_code == 200
    # the attacked organisation, from anywhere: locked
    assert log_in(browser(inbox, COLLEAGUE), PARTNER, f"dev-{PARTNER}").status_code == 429
    # the attacker's address, for any organisation: locked
    assert log_in(inbox, OTHER, f"dev-{OTHER}").status_code == 429


def test_a_success_resets_the_address_and_unknown_organisations_count_against_it(
    harness: Harness, clock: MovableClock
) -> None:
    """Ids outside the directory get no key of their own (they cannot crowd the table), their failures
    count against the address; a log-in that goes through starts the address's count again."""
    inbox = harness.inbox(ATTACKER, now=clock)
    for n in range(4):
        assert log_in(inbox, f"nobody-{n}", "x").status_code == 401
    assert log_in(inbox, OTHER, f"dev-{OTHER}").status_code == 200
    inbox.cookies.clear()
    for n in range(4):
        assert log_in(inbox, f"nobody-{n}", "x").status_code == 401  # not 429: the count started again
    assert log_in(inbox, "nobody-5", "x").status_code == 401  # the 5th failure since the success...
    assert log_in(inbox, "nobody-6", "x").status_code == 429  # ...and the next one waits


def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(
    harness: Harness, clock: MovableClock
) -> None:
    """Without CEPBUS_INBOX_CLIENT_ADDRESS_HEADER, a client that names a new address in each request's
    X-Forwarded-For is still one address; behind a proxy that writes it, its last address is the client."""
    inbox = harness.inbox(ATTACKER, now=clock)
    for n in range(6):
        inbox.headers["X-Forwarded-For"] = f"192.0.2.{n}"
        answer = log_in(inbox, f"nobody-{n}", "x")
    assert answer.status_code == 429
    proxied = harness.inbox(
        "10.0.0.2", now=clock, settings=InboxSettings(client_address_header="X-Forwarded-For")
    )
    for n in range(6):
        proxied.headers["X-Forwarded-For"] = f"{ATTACKER}, 192.0.2.{n}"  # the proxy appends what it saw
        assert log_in(proxied, f"nobody-{n}", "x").status_code == 401


def test_the_limiter_forgets_old_failures_and_keeps_a_bounded_table() -> None:
    now = [0.0]
    throttle = LoginThrottle(
        throttle_after=2, lock_after=4, window_s=60, lock_s=30, max_keys=3, clock=lambda: now[0]
    )
    keys = throttle.keys("a", "org")
    throttle.failed(keys)
    throttle.failed(keys)
    assert throttle.check(keys) is not None  # two failures: wait
    now[0] += 61  # both out of the window
    assert throttle.check(keys) is None
    for address in ("b", "c", "d", "e"):
        throttle.failed(throttle.keys(address, None))
    assert len(throttle._records) == 3  # the least recently used forgotten
    with pytest.raises(ValueError, match="throttle_after"):
        LoginThrottle(throttle_after=5, lock_after=5)


def test_settings_refuse_a_lock_that_comes_before_the_slow_down() -> None:
    with pytest.raises(ValueError, match="CEPBUS_INBOX_LOGIN_LOCK_AFTER"):
        InboxSettings(login_throttle_after=10, login_lock_after=10)
