"""Failed log-ins slow down, then lock (issue #23, finding 10: 40 wrong log-ins in 1.7 s, none slowed).

A log-in token is a secret that can be guessed online; this bounds the guesses. Each attempt has two
keys: the client's address and the organisation it names (only an organisation of the directory: an
unknown id gets no key of its own, so junk ids cannot crowd the real ones out of the table). For each key:

- its failures within `window_s` are counted;
- from `throttle_after` failures on, an attempt is taken only once a delay has passed since the last
  failure (`base_delay_s`, doubled with each further failure, at most `max_delay_s`); an attempt before
  then is refused as `throttled` (429 with `Retry-After`) and counts as a failure, so hammering on only
  brings the lock nearer;
- at `lock_after` failures the key is `locked` for `lock_s`: every attempt is refused, the right token
  too, so a guesser cannot tell from the answer when he has hit.

Both refusals come before the token is checked: a refused attempt asks the read side nothing. A success
resets the address's count (a colleague who mistyped), never the organisation's (its guesser is
elsewhere). Answered with a 429 rather than by sleeping: a sleeping request would hold a worker, which
an attacker would turn into a denial of service. The table is an LRU of `max_keys` keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cepbus.runtime.logs import get_logger

log = get_logger(service="inbox")

THROTTLED, LOCKED = "throttled", "locked"


@dataclass
class _Record:
    """One key's recent failures (times, oldest first) and the end of its lock."""

    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused before its token is checked, and when to come back."""

    reason: str  # THROTTLED or LOCKED
    retry_after_s: int


class LoginThrottle:
    """The failed-log-in limiter of one inbox process (thread-safe: pages run in a thread pool)."""

    def __init__(
        self,
        *,
        throttle_after: int = 5,
        lock_after: int = 20,
        window_s: float = 900.0,
        lock_s: float = 900.0,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < throttle_after < lock_after:
            raise ValueError(f"need 0 < throttle_after ({throttle_after}) < lock_after ({lock_after})")
        self.throttle_after, self.lock_after = throttle_after, lock_after
        self.window_s, self.lock_s = window_s, lock_s
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.max_keys = max_keys
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str, org_id: str | None) -> list[tuple[str, str]]:
        """The keys an attempt counts against: its address, and its organisation when it is one."""
        return [("address", address), *([("organisation", org_id)] if org_id else [])]

    def check(self, keys: list[tuple[str, str]]) -> Refusal | None:
        """None when the attempt may go on to the token check; else the refusal (a throttled attempt
        counts as a failure)."""
        now = self._clock()
        with self._lock:
            locked = [r.locked_until - now for key in keys if (r := self._get(key, now)).locked_until > now]
            if locked:
                return Refusal(LOCKED, _seconds(max(locked)))
            waits = [self._wait(self._get(key, now), now) for key in keys]
            if max(waits) <= 0:
                return None
            self._fail(keys, now)
            lock = max(self._get(key, now).locked_until - now for key in keys)
            return Refusal(LOCKED, _seconds(lock)) if lock > 0 else Refusal(THROTTLED, _seconds(max(waits)))

    def failed(self, keys: list[tuple[str, str]]) -> None:
        """A wrong token (or an organisation outside the directory): one more failure for each key."""
        now = self._clock()
        with self._lock:
            self._fail(keys, now)

    def succeeded(self, address: str) -> None:
        """A log-in went through from `address`: its count starts again."""
        with self._lock:
            self._records.pop(("address", address), None)

    # -- under self._lock ---------------------------------------------------------------------------

    def _get(self, key: tuple[str, str], now: float) -> _Record:
        """The key's record with the failures older than the window dropped (created, most recent use
        last, the least recently used forgotten beyond `max_keys`)."""
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(key)
        while record.failures and now - record.failures[0] > self.window_s:
            record.failures.popleft()
        return record

    def _wait(self, record: _Record, now: float) -> float:
        """How long the key must still wait before its next attempt (<= 0: it may go on)."""
        count = len(record.failures)
        if count < self.throttle_after:
            return 0.0
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** (count - self.throttle_after))
        return record.failures[-1] + delay - now

    def _fail(self, keys: list[tuple[str, str]], now: float) -> None:
        for key in keys:
            record = self._get(key, now)
            record.failures.append(now)
            if len(record.failures) >= self.lock_after:
                record.locked_until = now + self.lock_s
                log.warning(
                    "inbox_login_locked",
                    key=key[0],
                    value=key[1],
                    failures=len(record.failures),
                    within_s=self.window_s,
                    lock_s=self.lock_s,
                )
                record.failures.clear()


def _seconds(delay: float) -> int:
    """A `Retry-After` value: whole seconds, at least one."""
    return max(1, math.ceil(delay))
