"""The page that loads the organisation's private keys into this browser, each as a non-extractable
WebCrypto key: the Ed25519 signing key (the steps' signatures) and the X25519 encryption key (the
person's contact, sealed to it, opened on the referral page). The files are read by the page's script
and never sent here; the page gets the directory's public keys to compare them with."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import Response

from cepbus.contract.identifiers import ID_FRAGMENT
from services.inbox.pages.dependencies import LoggedIn

#: Where the page may send the user back to once the key is loaded: a referral or its signing page, or
#: the export, never another site (an open redirect).
_NEXT = re.compile(rf"^(/referrals/{ID_FRAGMENT}(/sign/[0-9a-f-]{{36}})?|/export)$")

router = APIRouter()


@router.get("/key")
def key_page(visit: LoggedIn, next: str = "") -> Response:
    org_id = visit.session.org_id
    data = {
        "org_id": org_id,
        "directory_keys": visit.inbox.directory_keys(org_id),
        "encryption_keys": visit.inbox.directory_encryption_keys(org_id),
        "next": next if _NEXT.match(next) else None,
    }
    return visit.page("key.html", data=data)
