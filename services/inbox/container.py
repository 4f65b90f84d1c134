"""The inbox's collaborators, built once by `build_app` and kept on `app.state.inbox`: what every page
reads (settings, directory, read side, sessions, templates) without a module-level global, so a test
builds as many inboxes as it likes, each with its own fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

from cepbus.reference import ReferenceData
from cepbus.reference.authorship import Authorship
from cepbus.reference.directory import Directory
from cepbus.trust.settings import TrustSettings
from services.inbox.publishing import StatusPublisher
from services.inbox.readside import ReadSide
from services.inbox.sessions import Sessions
from services.inbox.settings import InboxSettings
from services.inbox.throttle import LoginThrottle

#: The zone of a referral whose region is unknown to the reference data.
_PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Inbox:
    """The application's collaborators, on `app.state.inbox`."""

    settings: InboxSettings
    trust: TrustSettings
    directory: Directory
    reference: ReferenceData
    read_side: ReadSide
    publisher: StatusPublisher
    sessions: Sessions
    templates: Jinja2Templates
    now: Callable[[], datetime]
    cookie_name: str
    secure: bool
    throttle: LoginThrottle  # failed log-ins, per address and organisation
    authorship: Authorship  # verifies the browsers' statement signatures against the directory

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def org_name(self, org_id: str) -> str:
        return self.directory.get(org_id).name if org_id in self.directory else org_id

    def zone(self, region_code: str | None) -> ZoneInfo:
        try:
            return self.reference.region(region_code or "").zone
        except (KeyError, ValueError):
            return _PARIS

    def directory_keys(self, org_id: str) -> list[dict[str, str]]:
        """The organisation's keys valid now, as the pages compare the loaded key with them."""
        keys = self.directory.keys_valid_at(org_id, self.now()) if org_id in self.directory else []
        return [{"key_id": k.key_id, "public_key": k.public_key} for k in keys]

    def directory_encryption_keys(self, org_id: str) -> list[dict[str, str | bool]]:
        """The organisation's encryption keys in the directory, past and current (a contact sealed to a
        key since rotated still opens with it), and whether each is valid now: public data, with which
        the key page compares the encryption key loaded into the browser."""
        now = self.now()
        return [
            {"key_id": k.key_id, "public_key": k.public_key, "valid": k.valid_at(now)}
            for k in self.directory.encryption_keys_of(org_id)
        ]
