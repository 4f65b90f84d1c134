"""The read side over HTTP (stdlib server in a daemon thread): a referral's status and history, and
an organisation's open referrals, as JSON.

    GET /referrals/<referral_id>              -> {"referral": {...}, "history": [...], "breaches": [...]}
    GET /organisations/<org_id>/referrals     -> {"org_id": ..., "open": [...]}
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

from services.router.referrals.store import ReferralStore


def referral_view(store: ReferralStore, referral_id: str) -> dict[str, Any] | None:
    """Current status, full history and reported breaches of one referral (None if unknown)."""
    record = store.get(referral_id)
    if record is None:
        return None
    return {
        "referral": record.to_json(),
        "history": [entry.to_json() for entry in store.history(referral_id)],
        "breaches": [{"deadline": name, "due_at_ms": due} for name, due in store.breaches(referral_id)],
    }


def open_view(store: ReferralStore, org_id: str) -> dict[str, Any]:
    return {"org_id": org_id, "open": [record.to_json() for record in store.open_for(org_id)]}


def serve_read_side(store: ReferralStore, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; returns the server (`.shutdown()` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
            body: dict[str, Any] | None
            if len(parts) == 2 and parts[0] == "referrals":
                body = referral_view(store, parts[1])
            elif len(parts) == 3 and parts[0] == "organisations" and parts[2] == "referrals":
                body = open_view(store, parts[1])
            else:
                self._reply(404, {"error": "not found: use /referrals/<id> or /organisations/<id>/referrals"})
                return
            if body is None:
                self._reply(404, {"error": f"unknown referral {parts[1]}"})
            else:
                self._reply(200, body)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep the service's logs structured
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="referrals-http", daemon=True).start()
    return server
