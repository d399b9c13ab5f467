"""PostgreSQL and RabbitMQ run as the machine's own daemons, not under supervisord.

They hold data that outlives the stack and other projects may share them, so the stack
starts them only when they are down and records that in ``.local/state.json``; ``make stop``
stops only what this file says we started. Users and passwords are (re)applied from the
secret files on every start, which keeps the setup idempotent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pika
import pika.exceptions

from infra.local import paths
from infra.local.secretgen import read_secret


def _log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def _run(args: list[str], *, input_text: str | None = None, check: bool = True,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=input_text, capture_output=True, text=True,
                          check=check, timeout=timeout)


def _as_postgres(args: list[str]) -> list[str]:
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0
            else ["sudo", "-u", "postgres"]) + args


def port_open(port: int, host: str = paths.HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not open port {port} within {timeout:.0f} s")
        time.sleep(0.25)


# --- state: which daemons this stack started ----------------------------------------------

def load_state() -> dict[str, object]:
    try:
        return json.loads(paths.STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_state(state: dict[str, object]) -> None:
    paths.STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(paths.STATE_FILE)


def _mark_started(name: str) -> None:
    state = load_state()
    started = set(state.get("started_daemons", []))  # type: ignore[arg-type]
    started.add(name)
    state["started_daemons"] = sorted(started)
    save_state(state)


# --- PostgreSQL --------------------------------------------------------------------------

def _postgres_cluster() -> tuple[str, str]:
    """The main cluster of the newest installed PostgreSQL (15 on Debian 12)."""
    result = _run(["pg_lsclusters", "--no-header"])
    clusters = [line.split() for line in result.stdout.splitlines() if line.strip()]
    mains = sorted((c for c in clusters if c[1] == "main"), key=lambda c: int(c[0]))
    if not mains:
        raise RuntimeError("no PostgreSQL 'main' cluster: run pg_createcluster <version> main")
    return mains[-1][0], mains[-1][1]


def _ensure_password_auth(version: str) -> None:
    """Debian's default pg_hba already allows scram over TCP from 127.0.0.1; keep it so."""
    hba = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
    rule = re.compile(r"^\s*host\s+all\s+all\s+127\.0\.0\.1/32\s+(md5|scram-sha-256)\s*$", re.M)
    if hba.exists() and not rule.search(hba.read_text()):
        hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"])


def start_postgresql() -> None:
    version, cluster = _postgres_cluster()
    _ensure_password_auth(version)
    if not port_open(paths.POSTGRES_PORT):
        _log(f"starting PostgreSQL {version}/{cluster}")
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start"])
        _mark_started("postgresql")
    wait_for_port(paths.POSTGRES_PORT, 60, "PostgreSQL")


def _psql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def setup_postgresql() -> None:
    """Role ``scanline`` (password from its secret) owning database ``scanline``."""
    password = read_secret("postgres-password")
    script = f"""
\\set ON_ERROR_STOP on
\\set pw {_psql_literal(password)}
SELECT 'CREATE ROLE {paths.DB_USER} LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{paths.DB_USER}') \\gexec
ALTER ROLE {paths.DB_USER} LOGIN PASSWORD :'pw';
SELECT 'CREATE DATABASE {paths.DB_NAME} OWNER {paths.DB_USER}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{paths.DB_NAME}') \\gexec
ALTER DATABASE {paths.DB_NAME} OWNER TO {paths.DB_USER};
"""
    _run(_as_postgres(["psql", "-q", "-X", "-p", str(paths.POSTGRES_PORT), "-d", "postgres",
                       "-f", "-"]), input_text=script)


def stop_postgresql() -> None:
    version, cluster = _postgres_cluster()
    _log(f"stopping PostgreSQL {version}/{cluster} (started by this stack)")
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "stop"], check=False)


# --- RabbitMQ ----------------------------------------------------------------------------

def _rabbitmq_login_works(password: str) -> bool:
    parameters = pika.ConnectionParameters(
        paths.HOST, paths.RABBITMQ_PORT, "/",
        pika.PlainCredentials(paths.RABBITMQ_USER, password),
        connection_attempts=1, socket_timeout=3, blocked_connection_timeout=3)
    try:
        pika.BlockingConnection(parameters).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def start_rabbitmq() -> None:
    if not port_open(paths.RABBITMQ_PORT):
        _log("starting RabbitMQ")
        _run(["rabbitmq-server", "-detached"])
        _mark_started("rabbitmq")
    # -detached returns before the node exists; await_startup fails (69) until it does.
    deadline = time.monotonic() + 120
    while _run(["rabbitmqctl", "-q", "await_startup", "--timeout", "30"], check=False,
               timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("RabbitMQ did not start within 120 s")
        time.sleep(1)
    wait_for_port(paths.RABBITMQ_PORT, 60, "RabbitMQ")


def setup_rabbitmq() -> None:
    """User ``scanline`` (administrator, all permissions on ``/``); skipped if it can log in."""
    password = read_secret("rabbitmq-password")
    if _rabbitmq_login_works(password):
        return
    user = paths.RABBITMQ_USER
    users = _run(["rabbitmqctl", "-q", "list_users"]).stdout.split()
    if user in users:
        _run(["rabbitmqctl", "change_password", user, password])
    else:
        _run(["rabbitmqctl", "add_user", user, password])
    _run(["rabbitmqctl", "set_user_tags", user, "administrator"])
    _run(["rabbitmqctl", "set_permissions", "-p", "/", user, ".*", ".*", ".*"])


def stop_rabbitmq() -> None:
    _log("stopping RabbitMQ (started by this stack)")
    _run(["rabbitmqctl", "stop"], check=False)


def stop_started_daemons() -> None:
    state = load_state()
    started = list(state.get("started_daemons", []))  # type: ignore[arg-type]
    if "rabbitmq" in started:
        stop_rabbitmq()
    if "postgresql" in started:
        stop_postgresql()
    state["started_daemons"] = []
    save_state(state)
