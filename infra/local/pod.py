"""Run one function as its pod runs it: of-watchdog in front of ``index.py``, in a network
namespace of its own.

``python -m infra.local.pod FUNCTION`` (supervisord's program for each function when the
watchdog binary is there, see ``watchdog_binary``) starts the real of-watchdog with the
image's environment (``WATCHDOG_ENV``, the template Dockerfile's ``ENV``) and stack.yml's
(``ready_path``, ``exec_timeout``, ``max_inflight``, read/write timeouts), so the local
stack answers ``/_/ready``, 429 and 504 as a cluster does.

Why a namespace: of-watchdog 0.10 always binds its own metrics on ``:8081`` and exits when
it cannot, so two watchdogs cannot share a network, exactly as two pods do not. Each pod
here gets a private loopback (``unshare(CLONE_NEWNET)``, root only) and this process joins
the two networks with small TCP relays:

- into the pod: the host's ``127.0.0.1:<function port>`` to the watchdog, and the host's
  metrics port (``METRICS_PORT`` locally) to the function's metrics on stack.yml's port;
- out of the pod: every ``127.0.0.1`` port the function's environment names (PostgreSQL,
  RabbitMQ, S3, SMTP, the gateway for JWKS, the callback receiver's port) to the same port
  on the host.

Each pod also gets a temporary folder of its own (``TMPDIR``: ``.local/tmp/<function>``,
emptied at each start), as a pod has its own ``/tmp``.

The relays use sockets created in the right namespace (a thread that entered the host's
namespace with ``setns`` makes the outward ones), and move the bytes inside the kernel
(``splice``, a thread per direction), so that they cost the stack next to nothing: a
cluster's pods have no relays at all. Without root or the binary the function
runs as ``python index.py`` directly (``infra.local.supervisor`` says so at start).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infra.local import paths
from infra.local.environment import function_environment, metrics_port
from infra.local.stackfile import Function, Stack, load
from scanline.domain import callbacks
from scanline.logs import configure as configure_logging

log = logging.getLogger("pod")

CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
UPSTREAM_PORT = 5000  # index.py behind the watchdog, as in the image
CHUNK = 64 * 1024
# The template Dockerfile's ENV for the watchdog (tests/deploy checks they agree).
WATCHDOG_ENV = {"fprocess": "python index.py", "mode": "http",
                "upstream_url": f"http://127.0.0.1:{UPSTREAM_PORT}", "prefix_logs": "false",
                "healthcheck_interval": "5"}
WATCHDOG_CANDIDATES = ("OF_WATCHDOG", "../shared/tools/bin/of-watchdog")
_URL_PORT = re.compile(r"//(?:[^@/]*@)?127\.0\.0\.1:(\d+)")

_libc = ctypes.CDLL(None, use_errno=True)


def watchdog_binary() -> Path | None:
    """``$OF_WATCHDOG``, else the shared tools' of-watchdog, else ``of-watchdog`` on PATH."""
    configured = os.environ.get("OF_WATCHDOG")
    candidates = [Path(configured)] if configured else []
    candidates += [paths.REPO / WATCHDOG_CANDIDATES[1]]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate.resolve()
    found = shutil.which("of-watchdog") or shutil.which("fwatchdog")
    return Path(found) if found else None


def pods_possible() -> str | None:
    """Why functions cannot run in pods here, or None when they can."""
    if watchdog_binary() is None:
        return ("of-watchdog not found (OF_WATCHDOG, ../shared/tools/bin/of-watchdog or "
                "PATH)")
    if os.geteuid() != 0:
        return "a network namespace per function needs root"
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        return "setpriv and unshare (util-linux) are missing"
    return None


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def enter_new_network() -> int:
    """Move this (still single-threaded) process into a new network namespace with its
    loopback up; return a descriptor of the namespace it came from."""
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags, b"\0" * 14))
    return host


def contained(command: Path) -> list[str]:
    """``command`` as the first process of a PID namespace of its own, killed with this one.

    A SIGKILL of this process then ends the whole pod, as a container's does: ``unshare``
    dies with its parent (``setpriv --pdeathsig``), takes the namespace's first process
    with it (``--kill-child``), and the kernel kills the rest of the namespace."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [setpriv, "--pdeathsig", "KILL", "--", unshare, "--pid", "--fork",
            "--kill-child", "--", str(command)]


def outward_ports(env: dict[str, str]) -> set[int]:
    """The host ports a function's environment points at (all on 127.0.0.1 locally),
    except where it listens itself."""
    ports = {int(p) for key, value in env.items() if key != "upstream_url"
             for p in _URL_PORT.findall(value)}
    if env.get("SMTP_HOST") == paths.HOST and env.get("SMTP_PORT"):
        ports.add(int(env["SMTP_PORT"]))
    # Completion callbacks go to a receiver of the user's on the host's loopback.
    for host in callbacks.parse_hosts(env.get("OCR_CALLBACK_HOSTS", "")):
        name, _, port = host.rpartition(":")
        if name == paths.HOST and port.isdigit():
            ports.add(int(port))
    return ports


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((paths.HOST, port))
    sock.listen(128)
    return sock


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Move what ``source`` receives to ``target`` until it ends, inside the kernel
    (``splice`` through a pipe: no copy into this process), then end ``target``'s sending
    side. A cluster's pods have no relay at all; this one costs two system calls per
    chunk, where a Python event loop cost a tenth of a millisecond."""
    read_end, write_end = os.pipe()
    try:
        while moved := os.splice(source.fileno(), write_end, CHUNK):
            while moved:
                moved -= os.splice(read_end, target.fileno(), moved)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, connect: Callable[[], socket.socket]) -> None:
    try:
        upstream = connect()
    except OSError:
        client.close()
        return
    with client, upstream:
        # A relay must not hold back what an endpoint wrote: with Nagle's algorithm on its
        # sockets each small query waits for a delayed ACK (40 ms), which a pod, talking
        # to the server directly, never does.
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()


def _relay(listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
    """Accept for ever; each connection gets a thread per direction."""
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve, args=(client, connect), daemon=True).start()


def stop_gracefully(pid: int) -> None:
    """SIGTERM to the watchdog, which drains and stops its function (``unshare`` itself
    ignores SIGTERM while it waits for its child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        watchdogs = [int(p) for p in children.read_text().split()]
    except OSError:
        watchdogs = []
    for target in watchdogs or [pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGTERM)


class Pod:
    def __init__(self, function: Function, stack: Stack, build: Path,
                 overrides: dict[str, str] | None = None) -> None:
        self.function = function
        self.build = build
        env = {**function_environment(function.name, stack), **(overrides or {})}
        self.pod_metrics = int(function.environment.get("METRICS_PORT", "0"))
        # Sockets the host can reach, made before leaving its namespace.
        self.inward = {function.port: _listener(function.port)}
        if self.pod_metrics:
            self.inward[self.pod_metrics] = _listener(metrics_port(function))
        self.outward = sorted(outward_ports(env))
        self.host_namespace = enter_new_network()
        # One thread in the host's namespace makes every outward socket.
        self.host_sockets = ThreadPoolExecutor(max_workers=1, initializer=self._join_host)
        # The image's PATH starts with its virtualenv; here it is .venv's.
        search = f"{paths.VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        self.env = {**os.environ, **env, **WATCHDOG_ENV, "PATH": search,
                    "port": str(function.port), "METRICS_PORT": str(self.pod_metrics),
                    "PYTHONUNBUFFERED": "1", "TMPDIR": str(self._own_tmp(function.name))}

    @staticmethod
    def _own_tmp(name: str) -> Path:
        """A /tmp of its own, empty at each start, as a pod's emptyDir is: of-watchdog
        keeps its readiness lock there (any other watchdog ending on a shared /tmp
        would delete it, and every pod would say 503)."""
        own = paths.POD_TMP_DIR / name
        shutil.rmtree(own, ignore_errors=True)
        own.mkdir(parents=True)
        return own

    def _join_host(self) -> None:
        _check(_libc.setns(self.host_namespace, CLONE_NEWNET), "setns(host)")

    def _to_host(self, port: int) -> socket.socket:
        sock = self.host_sockets.submit(socket.socket).result()
        sock.connect((paths.HOST, port))
        return sock

    @staticmethod
    def _into_pod(port: int) -> socket.socket:
        return socket.create_connection((paths.HOST, port))

    def run(self, watchdog: Path) -> int:
        relays = [(listener, lambda p=pod_port: self._into_pod(p))
                  for pod_port, listener in self.inward.items()]
        relays += [(_listener(port), lambda p=port: self._to_host(p)) for port in self.outward]
        for listener, connect in relays:
            threading.Thread(target=_relay, args=(listener, connect), daemon=True).start()
        process = subprocess.Popen(contained(watchdog), cwd=self.build, env=self.env)
        log.info("pod started", extra={"target": self.function.name, "watchdog": str(watchdog),
                                       "relayed": self.outward})
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop_gracefully(process.pid))
        return process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.pod")
    parser.add_argument("function")
    parser.add_argument("--stack", type=Path, default=None,
                        help="the stack file (default stack.yml; tests pass their own)")
    parser.add_argument("--context", type=Path, default=None,
                        help="the function's build context (default .local/build/FUNCTION)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment value over the local one (tests: a server down)")
    args = parser.parse_args(argv)
    configure_logging(f"pod-{args.function}")
    watchdog = watchdog_binary()
    if watchdog is None:
        print("of-watchdog not found", file=sys.stderr)
        return 2
    stack = load(args.stack)
    overrides = dict(item.split("=", 1) for item in args.set)
    pod = Pod(stack.functions[args.function], stack,
              args.context or paths.BUILD_DIR / args.function, overrides)
    return pod.run(watchdog)


if __name__ == "__main__":
    sys.exit(main())
