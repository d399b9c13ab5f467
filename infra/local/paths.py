"""Where the local stack keeps its files and which ports it uses: spelled here once.

Everything generated at run time lives under ``.local/`` (git-ignored), so deleting that
folder resets the stack except for the system PostgreSQL/RabbitMQ data.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / ".local"
BUILD_DIR = LOCAL / "build"
# Overridable so the trigger can also run in a container (compose): see infra/compose.
SECRETS_DIR = Path(os.environ.get("SECRETS_DIR", str(LOCAL / "secrets")))
# docker-compose mounts copies its containers' users can read (secretgen.export_for_compose).
COMPOSE_SECRETS_DIR = LOCAL / "compose-secrets"
LOG_DIR = LOCAL / "logs"
# Each pod's own /tmp (its emptyDir): the watchdog's lock file, which its health checks,
# and the function's temporary files are never another pod's.
POD_TMP_DIR = LOCAL / "tmp"
STATE_FILE = LOCAL / "state.json"
SUPERVISOR_CONF = LOCAL / "supervisord.conf"
SUPERVISOR_PID = LOCAL / "supervisord.pid"
SUPERVISOR_SOCK = LOCAL / "supervisor.sock"
VENV = REPO / ".venv"
PYTHON = VENV / "bin" / "python"

HOST = "127.0.0.1"
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
# The gateway's Prometheus metrics, on a port of their own as OpenFaaS serves them (8082):
# not on the public one.
GATEWAY_METRICS_PORT = int(os.environ.get("GATEWAY_METRICS_PORT", "8082"))
# The gateway's administrator, as OpenFaaS names them (the ``basic-auth`` secret's user and
# password): ``/system/*`` asks for them; faas-cli logs in with them.
GATEWAY_ADMIN = "admin"
GATEWAY_PASSWORD_SECRET = "basic-auth-password"
POSTGRES_PORT = 5432
RABBITMQ_HOST = os.environ.get("RABBITMQ_HOST", HOST)
RABBITMQ_PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
S3_PORT = 9000
# moto itself, reached only through the checking front on S3_PORT (infra.local.s3server).
S3_BACKEND_PORT = 9002
SMTP_PORT = 1025
MAIL_WEB_PORT = 8025
# The one place the local gateway POSTs async callbacks to (its GATEWAY_CALLBACK_HOSTS):
# a receiver of your own on this loopback port. Nothing else, so X-Callback-Url cannot
# make the gateway call the stack's own services.
CALLBACK_PORT = int(os.environ.get("CALLBACK_PORT", "8099"))

S3_BUCKET = "scanline-uploads"
# SCANLINE_DB: another database on the same server, for a second checkout's stack.
DB_NAME = os.environ.get("SCANLINE_DB", "scanline")
DB_USER = "scanline"
RABBITMQ_USER = "scanline"


def mail_dir() -> Path:
    """``$MAIL_DIR`` or ``.local/mail``: read at call time so tests and the CLI can redirect it."""
    return Path(os.environ.get("MAIL_DIR", str(LOCAL / "mail")))
