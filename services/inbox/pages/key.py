"""The page that loads the organisation's private key into this browser, as a non-extractable WebCrypto
key: the file is read by the page's script and never sent here."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import Response

from cepbus.contract.identifiers import ID_FRAGMENT
from services.inbox.pages.dependencies import LoggedIn

#: Where the page may send the user back to once the key is loaded: a referral or its signing page,
#: never another site (an open redirect).
_NEXT = re.compile(rf"^/referrals/{ID_FRAGMENT}(/sign/[0-9a-f-]{{36}})?$")

router = APIRouter()


@router.get("/key")
def key_page(visit: LoggedIn, next: str = "") -> Response:
    org_id = visit.session.org_id
    data = {
        "org_id": org_id,
        "directory_keys": visit.inbox.directory_keys(org_id),
        "next": next if _NEXT.match(next) else None,
    }
    return visit.page("key.html", data=data)
