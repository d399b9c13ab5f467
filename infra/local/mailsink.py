"""SMTP sink: keeps every message as an ``.eml`` file and shows them on a small web page.

Mail is the only way a person sees an OTP locally and the way tests check delivery, so
each message is written atomically (temporary file, then rename): a reader never sees half
a message. File names sort in arrival order. The web side is read-only.
"""

from __future__ import annotations

import html
import json
import logging
import os
import signal
import threading
import time
import uuid
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from infra.local import paths
from scanline.logs import configure as configure_logging

log = logging.getLogger("mailsink")


def store(directory: Path, envelope_from: str, recipients: list[str], content: bytes) -> Path:
    """Write one message with its envelope prepended as headers; return the final path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.eml"
    head = (f"X-Envelope-From: <{envelope_from}>\r\n"
            f"X-Envelope-To: {', '.join(f'<{r}>' for r in recipients)}\r\n").encode()
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(head + content)
        handle.flush()
        os.fsync(handle.fileno())
    final = directory / name
    tmp.replace(final)
    return final


def summaries(directory: Path) -> list[dict[str, str]]:
    """From, To, Subject and Date of every stored message, oldest first."""
    parser = BytesParser(policy=policy.default)
    result = []
    for path in sorted(directory.glob("*.eml")):
        with open(path, "rb") as handle:
            headers = parser.parse(handle, headersonly=True)
        result.append({"file": path.name, "from": str(headers.get("From", "")),
                       "to": str(headers.get("To", "")),
                       "subject": str(headers.get("Subject", "")),
                       "date": str(headers.get("Date", ""))})
    return result


class StoreHandler:
    """aiosmtpd handler: accept every recipient, store the message, answer 250."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        path = store(self.directory, str(envelope.mail_from), list(envelope.rcpt_tos), content)
        log.info("stored message", extra={"file": path.name, "rcpt_count": len(envelope.rcpt_tos)})
        return "250 Message accepted for delivery"


def _web_handler(directory: Path) -> type[BaseHTTPRequestHandler]:
    class Web(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/api/messages":
                self._send(200, json.dumps(summaries(directory)).encode(), "application/json")
            elif path.startswith("/api/messages/"):
                name = path.rsplit("/", 1)[1]
                file = directory / name
                if name.endswith(".eml") and "/" not in name and file.is_file():
                    self._send(200, file.read_bytes(), "message/rfc822")
                else:
                    self._send(404, b'{"title":"Not Found","status":404}',
                               "application/problem+json")
            elif path == "/":
                rows = "".join(
                    f"<tr><td>{html.escape(m['date'])}</td><td>{html.escape(m['from'])}</td>"
                    f"<td>{html.escape(m['to'])}</td><td><a href='/api/messages/"
                    f"{html.escape(m['file'])}'>{html.escape(m['subject']) or '(none)'}</a>"
                    f"</td></tr>" for m in reversed(summaries(directory)))
                page = ("<!doctype html><title>Scanline mail</title><h1>Scanline mail</h1>"
                        f"<p>{html.escape(str(directory))}</p><table border=1 cellpadding=4>"
                        "<tr><th>Date</th><th>From</th><th>To</th><th>Subject</th></tr>"
                        f"{rows}</table>")
                self._send(200, page.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b'{"title":"Not Found","status":404}', "application/problem+json")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Web


def main() -> None:
    configure_logging("mailsink")
    directory = paths.mail_dir()
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(StoreHandler(directory), hostname=paths.HOST, port=paths.SMTP_PORT,
                            data_size_limit=25 * 1024 * 1024)
    controller.start()
    web = ThreadingHTTPServer((paths.HOST, paths.MAIL_WEB_PORT), _web_handler(directory))
    web.daemon_threads = True
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    log.info("listening", extra={"smtp": paths.SMTP_PORT, "web": paths.MAIL_WEB_PORT,
                                 "mail_dir": str(directory)})
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    web.shutdown()
    controller.stop()


if __name__ == "__main__":
    main()
