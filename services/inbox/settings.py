"""The inbox's settings (`CEPBUS_INBOX_`), and the trust material production refuses."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cepbus.trust.modes import TrustProblem
from cepbus.trust.settings import TrustSettings

#: The shortest session secret accepted (bytes of the file): 256 bits of key for HMAC-SHA-256.
MIN_SECRET_BYTES = 32


class InboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_INBOX_", extra="ignore")

    host: str = "127.0.0.1"  # loopback; in a pod, a TLS-terminating ingress reaches it through 0.0.0.0
    port: int = Field(default=9105, ge=0, le=65535)  # the pages, /healthz, /readyz and /metrics
    # The router's read side (GET /organisations/<org>/referrals, /referrals/<id>), with each
    # organisation's bearer token; https in production, the tokens travel on it.
    read_side_url: str = "http://127.0.0.1:9104"
    read_side_timeout_s: float = Field(default=5.0, gt=0)
    # The secret session cookies and form (CSRF) tokens are keyed with: a file of at least 32 bytes.
    # None: a random secret per process (development: sessions end when the process does).
    session_secret_path: Path | None = None
    session_idle_s: float = Field(default=3600.0, gt=0)  # a session unused this long is closed
    session_max_s: float = Field(default=10 * 3600.0, gt=0)  # and any session after this long
    cookie_secure: bool | None = None  # None: Secure cookies in production (HTTPS), not in development
    # How long a step the inbox published is shown as waiting for the router before the page says the
    # router did not apply it (refused, or the bus is slow).
    pending_window_s: float = Field(default=60.0, gt=0)
    # The list's « Sans réponse depuis N jours » badge, from this many whole days unanswered on (the
    # router's first `unanswered` reminder, CEPBUS_REFERRALS_REMIND_EVERY, is at 10 days).
    unanswered_after_days: int = Field(default=10, ge=1)
    # Failed log-ins, per client address and per organisation (services/inbox/throttle.py): from this
    # many failures within the window on, each attempt waits a doubling delay (429, Retry-After)...
    login_throttle_after: int = Field(default=5, ge=1)
    # ...and at this many the address or organisation is locked for `login_lock_s`, right token or not.
    login_lock_after: int = Field(default=20, ge=2)
    login_window_s: float = Field(default=900.0, gt=0)
    login_lock_s: float = Field(default=900.0, gt=0)
    # The header a trusted reverse proxy puts the client's address in (e.g. X-Forwarded-For: its last
    # address is the one the proxy saw); None: the connection's peer. Set it only behind such a proxy,
    # or any client names its own address.
    client_address_header: str | None = None

    @model_validator(mode="after")
    def _lock_after_throttle(self) -> InboxSettings:
        if self.login_lock_after <= self.login_throttle_after:
            raise ValueError(
                f"CEPBUS_INBOX_LOGIN_LOCK_AFTER ({self.login_lock_after}) must be more than "
                f"CEPBUS_INBOX_LOGIN_THROTTLE_AFTER ({self.login_throttle_after})"
            )
        return self

    def secure_cookies(self, trust: TrustSettings) -> bool:
        return trust.production if self.cookie_secure is None else self.cookie_secure


def load_session_secret(settings: InboxSettings) -> bytes:
    """The session secret from its file, or a random one for this process when none is configured
    (never a derivable one). ValueError when the file is too short to be a key."""
    if settings.session_secret_path is None:
        return secrets.token_bytes(MIN_SECRET_BYTES)
    raw = settings.session_secret_path.read_bytes().strip()
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(
            f"CEPBUS_INBOX_SESSION_SECRET_PATH {settings.session_secret_path}: {len(raw)} bytes, at least"
            f" {MIN_SECRET_BYTES} are needed (e.g. head -c 48 /dev/urandom | base64 > file)"
        )
    return raw


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def inbox_trust_problems(settings: InboxSettings, trust: TrustSettings) -> list[TrustProblem]:
    """What production refuses in the inbox's own configuration (the directory's problems are
    `cepbus.reference.directory.directory_trust_problems`)."""
    problems = []
    if settings.session_secret_path is None:
        problems.append(
            TrustProblem(
                "the inbox keys its sessions with a random secret of this process only",
                "set CEPBUS_INBOX_SESSION_SECRET_PATH to a file of at least 32 random bytes",
            )
        )
    if not settings.secure_cookies(trust):
        problems.append(
            TrustProblem(
                "the inbox's session cookies are sent without Secure (plain HTTP)",
                "serve it behind HTTPS and leave CEPBUS_INBOX_COOKIE_SECURE unset or true",
            )
        )
    if urlsplit(settings.read_side_url).scheme != "https" and not _loopback(settings.read_side_url):
        problems.append(
            TrustProblem(
                f"the organisations' bearer tokens go to the read side {settings.read_side_url} in clear",
                "set CEPBUS_INBOX_READ_SIDE_URL to the read side's https:// address",
            )
        )
    return problems
