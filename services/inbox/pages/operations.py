"""Liveness, readiness (the read side answers) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.inbox.pages.dependencies import InboxDep

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get("/readyz")
def readyz(inbox: InboxDep) -> Response:
    ok = inbox.read_side.healthy()
    return JSONResponse({"ok": ok, "read_side": inbox.read_side.base_url}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
