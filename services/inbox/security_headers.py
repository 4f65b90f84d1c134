"""The headers every answer of the inbox carries: a page that signs on the organisation's behalf must
load nothing from elsewhere, run no inline script, and never be framed or cached."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

#: No external asset, no inline script; the pages' data reaches their module as JSON elements.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware (`app.middleware("http")`)."""
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would send Origin: null
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
