"""The router's read side, as the inbox reads it: over HTTP with the organisation's bearer token, like
any partner's information system. The read side is the authority on who a token is and what it may
see (it scopes every answer to the token's organisation); the inbox adds nothing to that but asks it.

Errors are typed so the pages can tell "your token is refused" (log in again) from "the read side is
down" (try later): a 401/403 is `Unauthorized`; no connection, a 5xx, a body that is not JSON or not
the contract's answer (`cepbus/contract/readside.py`) is `Unavailable`; another organisation's referral
is a 404 there, `None` here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, TypeVar
from urllib.parse import quote

import pydantic

from cepbus.contract.identifiers import ID_REGEX
from cepbus.contract.readside import (
    ExportedReferralView,
    OpenReferralsView,
    ReferralRecordView,
    ReferralsExportView,
    ReferralView,
    UpdateVerdictView,
)
from services.inbox.metrics import READ_SIDE_ERRORS

Answer = TypeVar("Answer", bound=pydantic.BaseModel)


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

    def _parsed(self, model: type[Answer], body: Any, path: str) -> Answer:
        """The body as the contract's answer; one that does not validate is `Unavailable` (the router
        and this inbox disagree on the contract), in one line naming the first wrong field."""
        try:
            return model.model_validate(body)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            why = " ".join(str(first["msg"]).split())
            raise Unavailable(
                f"read side {self.base_url}{path}: not a {model.__name__} "
                f"({exc.error_count()} invalid; first {where}: {why})"
            ) from None

    def open_referrals(self, org_id: str, token: str) -> list[ReferralRecordView]:
        """The organisation's open referrals (as requester or recipient). `Unauthorized` when the token
        is not this organisation's: this is also how a log-in is checked."""
        if not ID_REGEX.match(org_id):
            raise Unauthorized(f"not an organisation id: {org_id[:40]!r}")
        path = f"/organisations/{quote(org_id, safe='')}/referrals"
        status, body = self._answer(path, token)
        if status != 200:
            raise Unavailable(f"read side: unexpected answer {status} for {org_id}'s referrals")
        answer = self._parsed(OpenReferralsView, body, path)
        if answer.org_id != org_id:
            raise Unavailable(f"read side: unexpected answer {status} for {org_id}'s referrals")
        return answer.open

    def export(self, org_id: str, token: str) -> list[ExportedReferralView]:
        """Every referral the organisation is party to, open or closed, with its closing reason code and,
        for those it received, the sealed contact (`GET /organisations/<org>/referrals/export`)."""
        if not ID_REGEX.match(org_id):
            raise Unauthorized(f"not an organisation id: {org_id[:40]!r}")
        path = f"/organisations/{quote(org_id, safe='')}/referrals/export"
        status, body = self._answer(path, token)
        if status != 200:
            raise Unavailable(f"read side: unexpected answer {status} for {org_id}'s export")
        answer = self._parsed(ReferralsExportView, body, path)
        if answer.org_id != org_id:
            raise Unavailable(f"read side: unexpected answer {status} for {org_id}'s export")
        return answer.referrals

    def referral(self, referral_id: str, token: str) -> ReferralView | None:
        """A referral's view (status, history, breaches, steps) if the token's organisation is party to
        it; None otherwise (unknown and another organisation's alike)."""
        if not ID_REGEX.match(referral_id):
            return None
        path = f"/referrals/{quote(referral_id, safe='')}"
        status, body = self._answer(path, token)
        if status in (404, 422):
            return None
        if status != 200:
            raise Unavailable(f"read side: unexpected answer {status} for referral {referral_id}")
        return self._parsed(ReferralView, body, path)

    def update_verdict(self, org_id: str, event_id: str, token: str) -> UpdateVerdictView | None:
        """The router's verdict on an update the organisation signed (applied or refused, with the
        reason code and detail), or None while the router has not judged it."""
        if not (ID_REGEX.match(org_id) and ID_REGEX.match(event_id)):
            return None
        path = f"/organisations/{quote(org_id, safe='')}/updates/{quote(event_id, safe='')}"
        status, body = self._answer(path, token)
        if status in (404, 422):
            return None
        if status != 200:
            raise Unavailable(f"read side: unexpected answer {status} for update {event_id}")
        answer = self._parsed(UpdateVerdictView, body, path)
        if answer.event_id != event_id:
            raise Unavailable(f"read side: unexpected answer {status} for update {event_id}")
        return answer

    def healthy(self) -> bool:
        try:
            status, _ = self._get("/healthz", None)
        except Unavailable:
            return False
        return status == 200
