"""The local S3: moto behind a front that checks what S3 checks, with the bucket in it.

moto keeps objects in memory and checks no signature (``infra.local.s3auth``), so
everything reaches it through this front, which refuses what S3 or MinIO would refuse
(unsigned or badly signed requests, expired presigned URLs, a browser POST outside its
policy) before handing the rest, unchanged, to moto's WSGI application in this process
(forwarded over a loopback hop of its own, each call cost 3-4 ms more). A browser POST
that passes is stored with a signed PUT of the front's own, to moto's server on a loopback
port of its own: moto would not enforce the policy's size range, the front already has.
moto's state is the process's, shared by the two.

Creating the bucket before reporting ready means supervisord's crash restart brings back a
usable S3 instead of one that answers NoSuchBucket.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import ThreadedMotoServer
from waitress import serve
from werkzeug.formparser import parse_form_data

from infra.local import paths
from infra.local.s3auth import (
    Credentials,
    S3Refusal,
    check_post_size,
    verify_headers,
    verify_post,
    verify_query,
)
from infra.local.secretgen import read_secret
from scanline.logs import configure as configure_logging

log = logging.getLogger("s3")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
BACKEND = f"http://{paths.HOST}:{paths.S3_BACKEND_PORT}"
# Headers of a connection, which the front's server sets and a WSGI application may not.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authenticate", "proxy-authorization", "server", "date"}
SPOOL_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           403: "Forbidden", 405: "Method Not Allowed"}


def create_bucket(endpoint: str, bucket: str = paths.S3_BUCKET) -> None:
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=read_secret("s3-access-key"),
        aws_secret_access_key=read_secret("s3-secret-key"))
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, lower-cased as SigV4 canonicalises them."""
    found = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
             if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").lower()] = environ[key]
    return found


def _error(start_response: StartResponse, refusal: S3Refusal) -> list[bytes]:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            f"<Code>{escape(refusal.code)}</Code><Message>{escape(refusal.message)}</Message>"
            f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>").encode()
    start_response(f"{refusal.status} {REASONS.get(refusal.status, 'Error')}",
                   [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _copy_body(environ: dict[str, Any], body: IO[bytes]) -> str:
    """The request body copied into ``body`` (rewound); returns its SHA-256."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    digest = hashlib.sha256()
    stream = environ["wsgi.input"]
    while length > 0:
        chunk = stream.read(min(CHUNK, length))
        if not chunk:
            break
        length -= len(chunk)
        digest.update(chunk)
        body.write(chunk)
    body.seek(0)
    return digest.hexdigest()


class Front:
    def __init__(self, credentials: Credentials,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.credentials, self.clock = credentials, clock
        self.moto = DomainDispatcherApplication(create_backend_app)
        # What the front itself stores (a browser POST it checked) goes to moto signed, as
        # moto treats an unsigned write to an existing key as anonymous.
        self.backend = boto3.client(
            "s3", endpoint_url=BACKEND, region_name=credentials.region,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            config=Config(s3={"addressing_style": "path"}))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            if self._is_browser_post(environ):
                return self._browser_post(environ, start_response)
            return self._signed(environ, start_response)
        except S3Refusal as refusal:
            log.info("refused", extra={"method": environ["REQUEST_METHOD"],
                                       "path": environ.get("PATH_INFO"), "code": refusal.code})
            return _error(start_response, refusal)

    @staticmethod
    def _is_browser_post(environ: dict[str, Any]) -> bool:
        return (environ["REQUEST_METHOD"] == "POST" and not environ.get("HTTP_AUTHORIZATION")
                and "X-Amz-Signature" not in environ.get("QUERY_STRING", "")
                and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"))

    def _signed(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
        raw_path = environ.get("REQUEST_URI", environ.get("PATH_INFO", "/")).split("?", 1)[0]
        headers = _headers(environ)

        def without_hop_by_hop(status: str, passed: list[tuple[str, str]],
                               *exc_info: Any) -> Any:
            return start_response(
                status, [(k, v) for k, v in passed if k.lower() not in HOP_BY_HOP], *exc_info)

        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            digest = _copy_body(environ, body)
            self._verify(method, raw_path, query, headers, digest)
            # moto matches keys against the path as it arrived (werkzeug's server names
            # it RAW_URI, waitress REQUEST_URI), and reads the body before it answers.
            return list(self.moto({**environ, "wsgi.input": body, "RAW_URI": raw_path
                                   + (f"?{query}" if query else "")}, without_hop_by_hop))

    def _verify(self, method: str, raw_path: str, query: str, headers: dict[str, str],
                digest: str) -> None:
        now = self.clock()
        if "authorization" in headers:
            payload = verify_headers(method, raw_path, query, headers, self.credentials, now)
            if len(payload) == 64 and payload != digest:
                raise S3Refusal(400, "XAmzContentSHA256Mismatch", "The provided "
                                "'x-amz-content-sha256' header does not match what was computed.")
        elif "X-Amz-Signature" in query:
            verify_query(method, raw_path, query, headers, self.credentials, now)
        else:
            raise S3Refusal(403, "AccessDenied", "Anonymous access is forbidden: sign the "
                            "request or use a presigned URL.")

    def _browser_post(self, environ: dict[str, Any],
                      start_response: StartResponse) -> Iterable[bytes]:
        bucket = environ.get("PATH_INFO", "/").strip("/")
        if not bucket or "/" in bucket:
            raise S3Refusal(405, "MethodNotAllowed", "POST uploads go to the bucket's URL")
        _, form, files = parse_form_data(environ, max_form_memory_size=1024 * 1024)
        upload = files.get("file")
        if upload is None:
            raise S3Refusal(400, "InvalidArgument", "POST requires exactly one file field")
        policy = verify_post(form.to_dict(), bucket, self.credentials, self.clock())
        upload.stream.seek(0, 2)
        size = upload.stream.tell()
        upload.stream.seek(0)
        check_post_size(policy, size)
        fields = {k.lower(): v for k, v in form.to_dict().items()}
        stored = self.backend.put_object(
            Bucket=bucket, Key=policy.key, Body=upload.stream,
            ContentType=fields.get("content-type", "binary/octet-stream"),
            Metadata={k.removeprefix("x-amz-meta-"): v for k, v in fields.items()
                      if k.startswith("x-amz-meta-")})
        status = int(fields.get("success_action_status", "204"))
        status = status if status in (200, 201, 204) else 204
        location = f"http://{environ.get('HTTP_HOST', '')}/{bucket}/{quote(policy.key)}"
        etag = stored["ETag"]
        body = b"" if status != 201 else (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse><Location>{escape(location)}'
            f"</Location><Bucket>{escape(bucket)}</Bucket><Key>{escape(policy.key)}</Key>"
            f"<ETag>{escape(etag)}</ETag></PostResponse>").encode()
        start_response(f"{status} {REASONS[status]}",
                       [("ETag", etag), ("Location", location),
                        ("Content-Length", str(len(body)))])
        log.info("stored by POST", extra={"bucket": bucket, "key": policy.key, "size": size})
        return [body]


def _wait_for(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((paths.HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    configure_logging("s3")
    backend = ThreadedMotoServer(ip_address=paths.HOST, port=paths.S3_BACKEND_PORT,
                                 verbose=False)
    backend.start()
    credentials = Credentials(read_secret("s3-access-key"), read_secret("s3-secret-key"))
    endpoint = f"http://{paths.HOST}:{paths.S3_PORT}"
    front = threading.Thread(target=serve, args=(Front(credentials),), daemon=True,
                             kwargs={"host": paths.HOST, "port": paths.S3_PORT, "threads": 8,
                                     "ident": "scanline-s3", "_quiet": True})
    front.start()
    _wait_for(paths.S3_PORT)
    create_bucket(endpoint)
    log.info("listening", extra={"endpoint": endpoint, "bucket": paths.S3_BUCKET})
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    backend.stop()


if __name__ == "__main__":
    main()
