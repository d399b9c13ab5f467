"""``python -m infra.local run|up|stop|status|build``: the local stack's one entry point.

``run`` prepares everything (daemons, secrets, users, migrations, builds, supervisord.conf)
and then becomes supervisord in the foreground, so Ctrl-C stops every program. ``up`` does
the same in the background and waits until ``/healthz`` is green. Both are idempotent: a
second call on a running stack reports it and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from infra.local import build, paths, services, supervisor
from infra.local.environment import function_environment
from infra.local.pod import pods_possible, watchdog_binary
from infra.local.secretgen import ensure_secrets, gateway_admin
from infra.local.stackfile import load

GATEWAY_URL = f"http://{paths.HOST}:{paths.GATEWAY_PORT}"


def _log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def supervisord_pid() -> int | None:
    """The pid of this stack's supervisord if it is alive (a stale pidfile is ignored)."""
    try:
        pid = int(paths.SUPERVISOR_PID.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if b"supervisord" in cmdline else None


def run_migrations() -> None:
    if importlib.util.find_spec("scanline.migrations") is None:
        _log("WARNING: scanline.migrations does not exist yet; skipping migrations")
        return
    env = {**os.environ, **function_environment("migrations"), "PYTHONPATH": str(paths.REPO)}
    subprocess.run([str(paths.PYTHON), "-m", "scanline.migrations"], cwd=paths.REPO, env=env,
                   check=True)


def prepare() -> None:
    """Everything before supervisord starts; each step is safe to repeat."""
    build.ensure_template_link()
    stack = load()
    created = ensure_secrets(stack.secret_names())
    if created:
        _log(f"generated secrets: {', '.join(created)} (in {paths.SECRETS_DIR})")
    services.start_postgresql()
    services.setup_postgresql()
    services.start_rabbitmq()
    services.setup_rabbitmq()
    run_migrations()
    built = build.build_all(stack)
    _log(f"built {len(built)} function(s) under {paths.BUILD_DIR}")
    paths.mail_dir().mkdir(parents=True, exist_ok=True)
    without = pods_possible()
    if without:
        _log(f"functions run without of-watchdog: {without}. They answer as index.py does "
             "(no ready_path, exec_timeout or max_inflight); pods get them")
    else:
        _log(f"functions run behind {watchdog_binary()}, one network namespace each")
    supervisor.write(stack)


def _banner() -> None:
    _log(f"gateway:     {GATEWAY_URL}  (health: {GATEWAY_URL}/healthz)")
    _log(f"console:     {GATEWAY_URL}/function/console/  (sign up, log in and OCR in a browser)")
    _log(f"mail folder: {paths.mail_dir()}  (web: http://{paths.HOST}:{paths.MAIL_WEB_PORT}/,"
         " CLI: .venv/bin/python -m infra.local.mail list)")
    _log(f"logs:        {paths.LOG_DIR}/<program>.log")


def _supervisord(*extra: str) -> list[str]:
    return [str(paths.PYTHON), "-m", "supervisor.supervisord", "-c", str(paths.SUPERVISOR_CONF),
            *extra]


def supervisorctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(paths.PYTHON), "-m", "supervisor.supervisorctl", "-c",
                           str(paths.SUPERVISOR_CONF), *args],
                          capture_output=True, text=True, check=False)


def cmd_run() -> int:
    if supervisord_pid():
        _log(f"the stack is already running (supervisord pid {supervisord_pid()}); "
             "`make stop` first to restart it")
        _banner()
        return 0
    prepare()
    _banner()
    _log("starting supervisord in the foreground; Ctrl-C stops everything")
    os.execv(str(paths.PYTHON), _supervisord("-n"))
    return 0  # not reached


def wait_healthy(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{GATEWAY_URL}/healthz", auth=gateway_admin(), timeout=10)
            if response.status_code == 200:
                return True
            last = response.text
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(1)
    _log(f"not healthy after {timeout:.0f} s: {last}")
    print(supervisorctl("status").stdout, flush=True)
    return False


def cmd_up(timeout: float) -> int:
    if supervisord_pid():
        _log("the stack is already running")
    else:
        prepare()
        subprocess.run(_supervisord(), check=True)
    _banner()
    if not wait_healthy(timeout):
        return 1
    _log("the stack is up")
    return 0


def cmd_stop(daemons: bool) -> int:
    pid = supervisord_pid()
    if pid:
        _log(f"stopping supervisord (pid {pid}) and its programs")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while supervisord_pid() and time.monotonic() < deadline:
            time.sleep(0.2)
        if supervisord_pid():
            _log("supervisord did not stop within 60 s")
            return 1
    else:
        _log("supervisord is not running")
    if daemons:
        services.stop_started_daemons()
    return 0


def cmd_status() -> int:
    if not supervisord_pid():
        _log("the stack is not running")
        return 3
    print(supervisorctl("status").stdout, end="")
    try:
        print(json.dumps(requests.get(f"{GATEWAY_URL}/healthz", auth=gateway_admin(), timeout=10)
                         .json(), indent=2))
    except (requests.RequestException, ValueError) as exc:
        _log(f"gateway: {exc!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start everything in the foreground")
    up = commands.add_parser("up", help="start everything in the background and wait")
    up.add_argument("--timeout", type=float, default=float(os.environ.get("UP_TIMEOUT", "180")))
    stop = commands.add_parser("stop", help="stop supervisord (and daemons we started)")
    stop.add_argument("--keep-daemons", action="store_true",
                      help="leave PostgreSQL and RabbitMQ running even if we started them")
    commands.add_parser("status", help="programs and /healthz")
    commands.add_parser("build", help="only lay out the build contexts")
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run()
    if args.command == "up":
        return cmd_up(args.timeout)
    if args.command == "stop":
        return cmd_stop(not args.keep_daemons)
    if args.command == "status":
        return cmd_status()
    for path in build.build_all():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
