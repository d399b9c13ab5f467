"""A real HTTP server on 127.0.0.1 publishing a JWK set, for the JWKS key source's tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JwksServer:
    """Serves ``document`` (JSON) with ``status`` at ``url`` and counts the fetches.

    ``stop()`` closes the listening socket: later fetches are refused, as when the token
    function is down.
    """

    def __init__(self, document: Any) -> None:
        self.document, self.status, self.hits = document, 200, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no request lines on the test output."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/function/token/jwks.json"
        # A short poll interval: shutdown() waits for one, and every test stops a server.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


@contextmanager
def serving(document: Any) -> Iterator[JwksServer]:
    server = JwksServer(document)
    try:
        yield server
    finally:
        server.stop()
