"""Local stand-in for the OpenFaaS gateway: the same URLs, in front of local processes.

- ``/function/<name>[/<path>]`` proxies to the function, streaming both bodies (waitress
  spools large uploads to disk; the proxy never holds a 20 MiB body in memory). Waitress
  reads a whole body before the application sees the request, so a ``Content-Length``
  over the largest limit of any function is refused from the headers alone, and one over
  its own function's ``MAX_REQUEST_BYTES`` (413) before it is passed on. A function
  marked ``io.scanline.event-only`` is not served at all (404): only its queue's trigger
  reaches it. (A server that hands requests over after their headers, cheroot, was tried:
  40 slow clients then held all its threads, where waitress reads them asynchronously.)
- ``/async-function/<name>[/<path>]`` answers 202 + ``X-Call-Id`` after the request is
  confirmed by RabbitMQ in ``scanline.async``; the queue-worker (``infra.local.queueworker``,
  its own program) invokes the function later. ``X-Callback-Url`` is accepted only when
  its host is on ``GATEWAY_CALLBACK_HOSTS`` (empty by default: no callbacks).
- ``/healthz`` is every function's own readiness (``/_/ready``, which the watchdog passes
  to the function): a function is up when it says so, and each dependency is as the
  functions that use it report it. Anyone gets the verdict (``ok`` or ``degraded``, 200 or
  503); which function or dependency is down is for the administrator (basic auth, as
  below). One report serves every caller for ``HEALTH_TTL``, so a flood of checks costs
  one round of readiness calls a second, not one per request.
- Metrics, OpenFaaS's ``gateway_function_invocation_total`` and ``gateway_functions_seconds``
  (labels ``function_name`` = ``<name>.openfaas-fn`` as OpenFaaS writes it, and ``code``),
  are served on a port of their own (``GATEWAY_METRICS_PORT``, 8082 as OpenFaaS), not on the
  public one, so dashboards made for OpenFaaS read them and callers do not.
- ``/system/functions`` lists the functions. Everything under ``/system/`` asks for the
  administrator's basic auth first (``admin`` and the ``basic-auth-password`` secret), as
  OpenFaaS's gateway does: without it, 401 and nothing about what is deployed.
Errors are RFC 9457 problem documents, like the functions' own.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, ClassVar
from urllib.parse import quote

import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties
from prometheus_client import Counter, Histogram, start_http_server
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from infra.connector.amqp import publisher
from infra.connector.trigger import declare_topology
from infra.local import paths
from infra.local.secretgen import gateway_admin
from infra.local.stackfile import Function, Stack, load
from scanline.adapters.topology import queue_name
from scanline.domain import callbacks
from scanline.errors import DependencyUnavailable
from scanline.logs import configure as configure_logging
from scanline.runtime.client_address import client_address, parse_networks, trusted

log = logging.getLogger("gateway")

ASYNC = "async"  # queue scanline.async and its dead-letter queue, named by topology
ASYNC_QUEUE = queue_name(ASYNC)
ASYNC_MAX_BYTES = 1024 * 1024  # OpenFaaS' NATS limit: pass an S3 key, not a file
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
CHUNK = 64 * 1024
PATH_SAFE = "/%:@!$&()*+,;=~"  # RFC 3986 pchar: what stays as it is in a proxied path
FUNCTION_TIMEOUT = float(os.environ.get("GATEWAY_FUNCTION_TIMEOUT", "60"))
CALLBACK_HOSTS = callbacks.parse_hosts(os.environ.get("GATEWAY_CALLBACK_HOSTS", ""))
TRUSTED_PROXIES = parse_networks(os.environ.get("GATEWAY_TRUSTED_PROXIES", ""))

FUNCTION_NAMESPACE = "openfaas-fn"
# What a readiness check reports, named as an operator knows the servers.
DEPENDENCY_NAMES = {"db": "postgresql", "bus": "rabbitmq", "store": "s3", "mail": "smtp",
                    "event-signing-key": "secrets", "event-keyring": "secrets",
                    "seal-key": "secrets", "seal-public-key": "secrets",
                    "secrets": "secrets"}
# How long one /healthz report answers every caller.
HEALTH_TTL = 1.0
# Connections the gateway holds open in all, and from one client address.
CONNECTION_LIMIT = 4000
CONNECTIONS_PER_CLIENT = 256
INVOCATIONS = Counter("gateway_function_invocation", "Function invocations through the gateway",
                      ["function_name", "code"])
SECONDS = Histogram("gateway_functions_seconds", "Time to the function's response headers",
                    ["function_name", "code"])

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 413: "Content Too Large", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


def problem_document(status: int, title: str, detail: str) -> bytes:
    return json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()


def problem(start_response: StartResponse, status: int, detail: str,
            headers: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
    title = REASONS.get(status, "Error")
    body = problem_document(status, title, detail)
    start_response(f"{status} {title}", [("Content-Type", "application/problem+json"),
                                         ("Content-Length", str(len(body))), *headers])
    return [body]


def basic_credentials(header: str) -> bytes | None:
    """``user:password`` of an ``Authorization: Basic`` header, or None."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def json_response(start_response: StartResponse, status: int, document: object) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(f"{status} {REASONS.get(status, '')}".strip(),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class ProblemErrorTask(ErrorTask):
    """Waitress's own refusals (headers over its limit, a body over the largest one, a
    request that is no HTTP) as the problem documents every other answer is."""

    def execute(self) -> None:
        error = self.request.error
        detail = error.body
        if error.code == 413:  # waitress says "exceeds max_body of <n>"
            largest = self.channel.adj.max_request_body_size
            size = self.request.content_length
            detail = (f"the body is {size} bytes; no function here accepts more than "
                      f"{largest}" if size > largest else
                      f"the body is over {largest} bytes, more than any function here accepts")
        body = problem_document(error.code, error.reason, detail)
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/problem+json"),
                                      ("Connection", "close")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class ProblemChannel(HTTPChannel):
    """A connection: waitress's own errors as problem documents, and at most
    ``CONNECTIONS_PER_CLIENT`` open at once from one client address. Waitress stops
    accepting anyone at ``connection_limit``; without a share per client, one client's idle
    half-requests (100 did it) locked every other caller out. A proxy on
    ``GATEWAY_TRUSTED_PROXIES`` carries many clients and has no share."""

    error_task_class = ProblemErrorTask
    open_per_client: ClassVar[collections.Counter[str]] = collections.Counter()

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        self._client = None if trusted(addr[0], TRUSTED_PROXIES) else str(addr[0])
        if self._client is None:
            return
        self.open_per_client[self._client] += 1
        if self.open_per_client[self._client] > CONNECTIONS_PER_CLIENT:
            log.warning("connection refused", extra={"client": self._client,
                                                      "open": CONNECTIONS_PER_CLIENT})
            self.close()

    def del_channel(self, map: Any = None) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            self.open_per_client[client] -= 1
            if self.open_per_client[client] <= 0:
                del self.open_per_client[client]
        super().del_channel(map)


class SizedStream:
    """``wsgi.input`` with a length, so requests streams it with Content-Length, not chunked."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self.stream = stream
        self.remaining = length

    def __len__(self) -> int:
        return self.remaining

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.stream.read(size)
        self.remaining -= len(data)
        return data


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The client's end-to-end headers plus X-Forwarded-* (hop-by-hop ones dropped).

    ``X-Forwarded-For`` is *replaced* by the one client address the gateway vouches for:
    its peer, or, when the peer is a proxy on ``GATEWAY_TRUSTED_PROXIES``, the address that
    proxy forwarded. Functions throttle per client address, so what a client writes in the
    header must never reach them."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            if name.lower() not in HOP_BY_HOP:
                headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    headers["X-Forwarded-For"] = client_address(
        environ.get("REMOTE_ADDR", ""), headers.get("X-Forwarded-For", ""), TRUSTED_PROXIES)
    headers["X-Forwarded-Host"] = environ.get("HTTP_HOST", "")
    headers["X-Forwarded-Proto"] = environ.get("wsgi.url_scheme", "http")
    return headers


def split_route(path: str, prefix: str) -> tuple[str, str]:
    """``/function/name/a/b`` -> (``name``, ``/a/b``)."""
    rest = path[len(prefix):]
    name, _, sub = rest.partition("/")
    return name, "/" + sub


class Gateway:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.publisher = publisher(declare_async_queue)
        self.checks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")
        self.admin = ":".join(gateway_admin()).encode()
        self._health_lock = threading.Lock()
        self._health: tuple[float, dict[str, Any] | None] = (0.0, None)

    # --- WSGI entry point --------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ["REQUEST_METHOD"]
        if path.startswith("/function/"):
            return self.proxy(environ, start_response, *split_route(path, "/function/"))
        if path.startswith("/async-function/"):
            if method != "POST":
                return problem(start_response, 405, "async invocations must be POST")
            return self.enqueue(environ, start_response, *split_route(path, "/async-function/"))
        if path in ("/healthz", "/healthz/"):
            return self.healthz(environ, start_response)
        if path.startswith("/system/"):
            return self.system(environ, start_response, path, method)
        return problem(start_response, 404, f"no route for {path}")

    def _function(self, name: str) -> Function | None:
        return self.stack.functions.get(name)

    def _reachable(self, start_response: StartResponse, name: str,
                   environ: dict[str, Any]) -> Function | list[bytes]:
        """The function an outside caller may invoke with this body, or the problem."""
        function = self._function(name)
        if function is None:
            return problem(start_response, 404, f"function {name!r} is not deployed")
        if function.event_only:
            return problem(start_response, 404, f"function {name!r} takes events from its "
                                                "queue only; it has no public endpoint")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > function.max_request_bytes:
            return problem(start_response, 413, f"the body is {length} bytes; {name} accepts "
                                                f"at most {function.max_request_bytes}")
        return function

    # --- synchronous proxy -------------------------------------------------------------
    def proxy(self, environ: dict[str, Any], start_response: StartResponse, name: str,
              sub_path: str) -> Iterable[bytes]:
        function = self._reachable(start_response, name, environ)
        if not isinstance(function, Function):
            return function
        query = environ.get("QUERY_STRING", "")
        url = f"http://{paths.HOST}:{function.port}{quote(sub_path, safe=PATH_SAFE)}"
        if query:
            url += "?" + query
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = SizedStream(environ["wsgi.input"], length) if length else None
        started = time.monotonic()
        label = f"{name}.{FUNCTION_NAMESPACE}"
        try:
            upstream = self.session.request(
                environ["REQUEST_METHOD"], url, data=body, headers=request_headers(environ),
                stream=True, allow_redirects=False, timeout=(2, FUNCTION_TIMEOUT))
        except requests.ConnectionError:
            _observe(label, 503, started)
            return problem(start_response, 503, f"function {name!r} is not running")
        except requests.Timeout:
            _observe(label, 504, started)
            return problem(start_response, 504, f"function {name!r} did not answer in time")
        _observe(label, upstream.status_code, started)
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
        if "Content-Length" in upstream.headers:
            headers.append(("Content-Length", upstream.headers["Content-Length"]))
        start_response(f"{upstream.status_code} {upstream.reason}", headers)
        return self._stream(upstream)

    @staticmethod
    def _stream(upstream: requests.Response) -> Iterator[bytes]:
        try:
            yield from upstream.raw.stream(CHUNK, decode_content=False)
        finally:
            upstream.close()

    # --- asynchronous invocation -------------------------------------------------------
    def enqueue(self, environ: dict[str, Any], start_response: StartResponse, name: str,
                sub_path: str) -> Iterable[bytes]:
        function = self._reachable(start_response, name, environ)
        if not isinstance(function, Function):
            return function
        callback = environ.get("HTTP_X_CALLBACK_URL", "")
        if callback and not callbacks.allowed(callback, CALLBACK_HOSTS):
            return problem(start_response, 400, "X-Callback-Url must be an http(s) URL on a "
                                                "host in GATEWAY_CALLBACK_HOSTS")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > ASYNC_MAX_BYTES:
            return problem(start_response, 413,
                           f"async requests are limited to {ASYNC_MAX_BYTES} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        call_id = environ.get("HTTP_X_CALL_ID") or str(uuid.uuid4())
        headers = request_headers(environ)
        headers["X-Call-Id"] = call_id
        properties = BasicProperties(
            delivery_mode=2, message_id=call_id, content_type="application/octet-stream",
            headers={"function": name, "path": sub_path,
                     "query": environ.get("QUERY_STRING", ""),
                     "request-headers": json.dumps(headers),
                     "callback-url": callback})
        try:
            self.publisher.send("", ASYNC_QUEUE, body, properties)
        except DependencyUnavailable as exc:
            log.warning("async publish failed", extra={"target": name, "error": repr(exc)})
            return problem(start_response, 503, "the queue is unavailable; retry later")
        log.info("queued", extra={"target": name, "call_id": call_id})
        start_response("202 Accepted", [("X-Call-Id", call_id), ("Content-Length", "0")])
        return [b""]

    # --- health and listing ------------------------------------------------------------
    def readiness(self, function: Function) -> tuple[bool, dict[str, str]]:
        """The function's own ``/_/ready``: whether it takes work, and its dependencies.

        429 is the watchdog at ``max_inflight``: busy, not down. Anything that is not the
        function's readiness document (refused, or the watchdog's 5xx while the function
        is still starting) is down.
        """
        try:
            response = requests.get(f"http://{paths.HOST}:{function.port}/_/ready", timeout=3)
        except requests.RequestException:
            return False, {}
        if response.status_code == 429:
            return True, {}
        try:
            checks = response.json().get("dependencies", {})
        except (ValueError, AttributeError):
            return False, {}
        return response.status_code == 200, {
            DEPENDENCY_NAMES.get(k, k): "up" if v == "up" else "down" for k, v in checks.items()}

    def _is_admin(self, environ: dict[str, Any]) -> bool:
        given = basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        return given is not None and hmac.compare_digest(given, self.admin)

    def healthz(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        document = self.health()
        code = 200 if document["status"] == "ok" else 503
        if not self._is_admin(environ):
            document = {"status": document["status"]}
        return json_response(start_response, code, document)

    def health(self) -> dict[str, Any]:
        """The stack's report, made at most once per ``HEALTH_TTL``: concurrent callers
        wait for the one being made."""
        with self._health_lock:
            made_at, report = self._health
            if report is None or time.monotonic() - made_at > HEALTH_TTL:
                report = self._check_health()
                self._health = (time.monotonic(), report)
            return report

    def _check_health(self) -> dict[str, Any]:
        functions = self.stack.functions
        reports = dict(zip(functions, self.checks.map(self.readiness, functions.values()),
                           strict=True))
        dependencies: dict[str, str] = {}
        for _, checks in reports.values():
            for name, state in checks.items():
                if dependencies.get(name) != "down":
                    dependencies[name] = state
        report = {"functions": {n: "up" if ok else "down" for n, (ok, _) in reports.items()},
                  "dependencies": dict(sorted(dependencies.items()))}
        healthy = all(v == "up" for group in report.values() for v in group.values())
        return {"status": "ok" if healthy else "degraded", **report}

    def system(self, environ: dict[str, Any], start_response: StartResponse, path: str,
               method: str) -> Iterable[bytes]:
        if not self._is_admin(environ):
            return problem(start_response, 401, "the gateway's administrator credentials are "
                           "required", headers=(("WWW-Authenticate", 'Basic realm="Restricted"'),))
        if path.rstrip("/") == "/system/functions" and method == "GET":
            return json_response(start_response, 200, self.system_functions())
        return problem(start_response, 404, f"no route for {method} {path}")

    def system_functions(self) -> list[dict[str, object]]:
        return [{"name": f.name, "image": f.image, "namespace": "openfaas-fn",
                 "replicas": 1, "availableReplicas": 1 if self.readiness(f)[0] else 0,
                 "invocationCount": 0, "envProcess": "python index.py",
                 "labels": f.labels, "annotations": f.annotations}
                for f in self.stack.functions.values()]


def _observe(function: str, code: int, started: float) -> None:
    INVOCATIONS.labels(function, str(code)).inc()
    SECONDS.labels(function, str(code)).observe(time.monotonic() - started)


def declare_async_queue(channel: BlockingChannel) -> None:
    """A quorum queue like a function's, so a failing async call is retried a bounded
    number of times and then kept in ``scanline.async.dlq``."""
    declare_topology(channel, ASYNC, ())


def main() -> None:
    configure_logging("gateway")
    gateway = Gateway(load())

    def shutdown(*_: object) -> None:
        gateway.publisher.close()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, shutdown)
    start_http_server(paths.GATEWAY_METRICS_PORT, addr=paths.HOST)
    log.info("listening", extra={"port": paths.GATEWAY_PORT,
                                 "metrics_port": paths.GATEWAY_METRICS_PORT})
    largest = max(f.max_request_bytes for f in gateway.stack.functions.values())
    server = create_server(
        gateway, host=paths.HOST, port=paths.GATEWAY_PORT, threads=16,
        ident="scanline-gateway", max_request_body_size=largest, channel_timeout=120,
        connection_limit=CONNECTION_LIMIT,
        # request_headers decides whose X-Forwarded-For to believe.
        clear_untrusted_proxy_headers=False)
    server.channel_class = ProblemChannel
    server.run()


if __name__ == "__main__":
    main()
