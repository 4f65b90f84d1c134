"""Sessions and form tokens of the inbox.

A log-in keeps the organisation's read-side token server-side, in memory, under a random session id;
the browser holds only that id, in an HttpOnly, SameSite=Strict cookie MAC'd with the session secret
(`CEPBUS_INBOX_SESSION_SECRET_PATH`), so the token never travels again after the log-in form.

Every POST carries a form token (CSRF): for a session, HMAC(secret, "csrf", session id); before the
log-in, HMAC(secret, "login", nonce) where the nonce is in a short cookie of its own (a forged log-in
form on another site has neither). Compared in constant time.

Sessions end when idle for `idle_s`, at most `max_s` after the log-in, at log-out, and with the process
(several replicas need sticky sessions: see docs/inbox.md). Drafts (prepared, unsigned updates) and the
updates already sent live in the session too: the server publishes only a draft it prepared itself for
that session's organisation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from cepbus.contract.models import ReferralStatus, ReferralStatusChanged

#: Drafts kept per session (the oldest is forgotten beyond).
MAX_DRAFTS = 20
#: Sent updates remembered per session, to show which the router has not applied yet.
MAX_SENT = 200


@dataclass(frozen=True)
class SentUpdate:
    event_id: str
    referral_id: str
    status: ReferralStatus
    sent_at: float  # time.time()


@dataclass
class Session:
    sid: str
    org_id: str
    token: str  # the read side's bearer token; never logged, never sent to the browser
    created: float
    last_seen: float
    drafts: OrderedDict[str, ReferralStatusChanged] = field(default_factory=OrderedDict)
    sent: list[SentUpdate] = field(default_factory=list)

    def add_draft(self, draft: ReferralStatusChanged) -> None:
        key = str(draft.envelope.event_id)
        self.drafts.pop(key, None)
        self.drafts[key] = draft
        while len(self.drafts) > MAX_DRAFTS:
            self.drafts.popitem(last=False)

    def add_sent(self, sent: SentUpdate) -> None:
        kept = [s for s in self.sent if s.event_id != sent.event_id]
        self.sent = [*kept[-(MAX_SENT - 1) :], sent]


class Sessions:
    def __init__(
        self,
        secret: bytes,
        idle_s: float = 3600.0,
        max_s: float = 36000.0,
        *,
        limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = secret
        self.idle_s, self.max_s, self.limit = idle_s, max_s, limit
        self._clock = clock
        self._by_sid: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._secret, f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()

    # -- sessions ---------------------------------------------------------------------------------

    def open(self, org_id: str, token: str) -> tuple[Session, str]:
        """A new session (a fresh id: no fixation), and the cookie value that names it."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), org_id, token, now, now)
        with self._lock:
            self._expire(now)
            self._by_sid[session.sid] = session
            while len(self._by_sid) > self.limit:
                self._by_sid.popitem(last=False)
        return session, f"{session.sid}.{self._mac('session', session.sid)}"

    def get(self, cookie: str | None) -> Session | None:
        """The live session the cookie names, or None (absent, forged, expired, closed)."""
        if not cookie or "." not in cookie or len(cookie) > 200:
            return None
        sid, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("session", sid)):
            return None
        now = self._clock()
        with self._lock:
            self._expire(now)
            session = self._by_sid.get(sid)
            if session is not None:
                session.last_seen = now
                self._by_sid.move_to_end(sid)
            return session

    def close(self, session: Session) -> None:
        with self._lock:
            self._by_sid.pop(session.sid, None)

    def _expire(self, now: float) -> None:
        dead = [
            sid
            for sid, s in self._by_sid.items()
            if now - s.last_seen > self.idle_s or now - s.created > self.max_s
        ]
        for sid in dead:
            del self._by_sid[sid]

    # -- form tokens ------------------------------------------------------------------------------

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def login_nonce(self) -> tuple[str, str]:
        """(nonce for the pre-login cookie, form token of the log-in form)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._mac("login", nonce)

    def login_token_valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(nonce) > 100:
            return False
        return hmac.compare_digest(str(token), self._mac("login", nonce))
