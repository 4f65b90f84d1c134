"""The organisation's export (issue #24): the page « Exporter (CSV) », and the CSV the server builds,
without any contact (`services/inbox/export.py`). The page gives its script (`static/export.js`) the
boxes of the contacts sealed to the organisation, as data: the script fetches the server's CSV, opens
each box with the organisation's key in this browser, adds the contact columns to the lines of the
referrals received, and offers that file for download. Nothing of a contact comes back here."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import Response

from services.inbox import export
from services.inbox.pages.dependencies import LoggedIn
from services.inbox.pages.reading import read

router = APIRouter()
_PARIS = ZoneInfo("Europe/Paris")


@router.get("/export")
def export_page(visit: LoggedIn) -> Response:
    inbox, session = visit.inbox, visit.session
    lines = read(visit, lambda: inbox.read_side.export(session.org_id, session.token))
    boxes = export.boxes(session.org_id, lines)
    received = sum(1 for line in lines if line.referral.recipient_org_id == session.org_id)
    data = {
        "org_id": session.org_id,
        "csv_url": "/export.csv",
        "filename": export.filename(session.org_id, inbox.now().astimezone(_PARIS)),
        "separator": export.SEPARATOR,
        "contact_columns": [list(column) for column in export.CONTACT_COLUMNS],
        "boxes": [dataclasses.asdict(box) for box in boxes],
        "key_page": "/key?next=/export",
    }
    return visit.page(
        "export.html",
        data=data,
        total=len(lines),
        received=received,
        sealed=len(boxes),
        columns=export.COLUMNS,
        contact_columns=[header for _, header in export.CONTACT_COLUMNS],
    )


@router.get("/export.csv")
def export_csv(visit: LoggedIn) -> Response:
    inbox, session = visit.inbox, visit.session
    lines = read(visit, lambda: inbox.read_side.export(session.org_id, session.token))
    name = export.filename(session.org_id, inbox.now().astimezone(_PARIS))
    return Response(
        export.export_csv(inbox, session.org_id, lines).encode("utf-8"),
        media_type=export.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
