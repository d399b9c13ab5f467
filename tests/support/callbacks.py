"""A callback receiver of a user's own, and the signature check docs/webhooks.md gives.

``Receiver`` listens on the loopback callback port (the only host the local stack may call
back), records what it is sent and answers what the test says. ``verify`` is the recipe
of docs/webhooks.md, written again here from the document with nothing of Scanline's code,
so a test that uses it fails if the document and the signatures ever part.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infra.local import paths


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(body: bytes, keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The event in a callback's body if its signature holds (docs/webhooks.md), else
    raises."""
    event = json.loads(body)
    key = next(k for k in keys if k["kid"] == event["keyid"] and k["producer"] == "ocr")
    sent = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).astimezone(UTC)
    signed = {
        "specversion": event["specversion"], "id": event["id"], "source": event["source"],
        "type": event["type"], "subject": event.get("subject"),
        "time": sent.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "datacontenttype": event.get("datacontenttype"), "keyid": event["keyid"],
        "data": event["data"],
    }
    public = Ed25519PublicKey.from_public_bytes(_unb64url(key["x"]))
    public.verify(_unb64url(event["signature"]), rfc8785.dumps(signed))
    return event


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers ``status`` (302 with a Location, to test that redirects are not followed)."""

    port: int = paths.CALLBACK_PORT
    status: int = 204
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{paths.HOST}:{self.port}/hooks/scanline"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(Received(self.path, dict(self.headers),
                                                  self.rfile.read(length)))
                self.send_response(receiver.status)
                if receiver.status in (301, 302, 307, 308):
                    self.send_header("Location", f"http://{paths.HOST}:{paths.S3_PORT}/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((paths.HOST, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def for_job(self, job_id: str) -> list[Received]:
        return [r for r in self.received if json.loads(r.body).get("subject") == job_id]
