"""The router's read side, as the inbox reads it: over HTTP with the organisation's bearer token, like
any partner's information system. The read side is the authority on who a token is and what it may
see (it scopes every answer to the token's organisation); the inbox adds nothing to that but asks it.

Errors are typed so the pages can tell "your token is refused" (log in again) from "the read side is
down" (try later): a 401/403 is `Unauthorized`; no connection, a 5xx or a body that is not JSON is
`Unavailable`; another organisation's referral is a 404 there, `None` here.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from services.inbox.metrics import READ_SIDE_ERRORS

#: The read side's own pattern of referral and organisation ids (services/router/referrals/http.py).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_ID = re.compile(ID_PATTERN)
_VERDICTS = ("applied", "refused")


class ReadSideError(Exception):
    """The read side did not give an answer the inbox can show."""


class Unauthorized(ReadSideError):
    """The token is not (or no longer) one of this organisation's."""


class Unavailable(ReadSideError):
    """The read side cannot be reached or answered with an error of its own."""


class ReadSide:
    """`GET` on the read side; subclasses (tests) replace `_get` with another transport."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, token: str | None) -> tuple[int, Any]:
        """(status, decoded JSON body) of `GET path`; raises `Unavailable` when there is none."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = None
            return exc.code, body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            READ_SIDE_ERRORS.inc()
            raise Unavailable(f"read side {self.base_url}: {type(exc).__name__}: {exc}") from None

    def _answer(self, path: str, token: str) -> tuple[int, Any]:
        status, body = self._get(path, token)
        if status in (401, 403):
            raise Unauthorized(f"the read side refused the token ({status})")
        if status >= 500 or (status == 200 and not isinstance(body, dict)):
            READ_SIDE_ERRORS.inc()
            raise Unavailable(f"read side {self.base_url}{path}: HTTP {status}")
        return status, body

    def open_referrals(self, org_id: str, token: str) -> list[dict[str, Any]]:
        """The organisation's open referrals (as requester or recipient). `Unauthorized` when the token
        is not this organisation's: this is also how a log-in is checked."""
        if not _ID.match(org_id):
            raise Unauthorized(f"not an organisation id: {org_id[:40]!r}")
        status, body = self._answer(f"/organisations/{quote(org_id, safe='')}/referrals", token)
        if status != 200 or body.get("org_id") != org_id or not isinstance(body.get("open"), list):
            raise Unavailable(f"read side: unexpected answer {status} for {org_id}'s referrals")
        return list(body["open"])

    def referral(self, referral_id: str, token: str) -> dict[str, Any] | None:
        """A referral's view (status, history, breaches, steps) if the token's organisation is party to
        it; None otherwise (unknown and another organisation's alike)."""
        if not _ID.match(referral_id):
            return None
        status, body = self._answer(f"/referrals/{quote(referral_id, safe='')}", token)
        if status in (404, 422):
            return None
        if status != 200 or not isinstance(body.get("referral"), dict):
            raise Unavailable(f"read side: unexpected answer {status} for referral {referral_id}")
        return dict(body)

    def update_verdict(self, org_id: str, event_id: str, token: str) -> dict[str, Any] | None:
        """The router's verdict on an update the organisation signed (`verdict` applied or refused,
        `reason_code`, `detail`), or None while the router has not judged it."""
        if not (_ID.match(org_id) and _ID.match(event_id)):
            return None
        path = f"/organisations/{quote(org_id, safe='')}/updates/{quote(event_id, safe='')}"
        status, body = self._answer(path, token)
        if status in (404, 422):
            return None
        if status != 200 or body.get("event_id") != event_id or body.get("verdict") not in _VERDICTS:
            raise Unavailable(f"read side: unexpected answer {status} for update {event_id}")
        return dict(body)

    def healthy(self) -> bool:
        try:
            status, _ = self._get("/healthz", None)
        except Unavailable:
            return False
        return status == 200
