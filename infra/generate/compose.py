"""docker-compose: the whole stack on a laptop, with the images ``faas-cli build`` lays out.

Secrets are mounted from ``.local/compose-secrets`` (``python -m infra.local.secretgen
compose``): copies readable by the containers' own users, which compose's bind mounts
would otherwise deny them (see ``infra.local.secretgen.export_for_compose``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from infra.generate.common import CONNECTOR, HEADER, WATCHDOG_PORT, sibling_image
from infra.generate.openfaas import MIGRATIONS_IMAGE_OF, PLATFORM_SECRETS
from infra.local.stackfile import Function, Stack

# Hosts that differ inside docker-compose; every other value is stack.yml's own.
OVERRIDES = {
    "DATABASE_URL": "postgresql+pg8000://scanline@postgres:5432/scanline",
    "RABBITMQ_URL": "amqp://scanline@rabbitmq:5672/%2F",
    "S3_ENDPOINT_URL": "http://minio:9000",
    "SMTP_HOST": "mailpit",
    "SMTP_PORT": "1025",
    "PUBLIC_URL": "http://localhost:8080",
    "JWKS_URL": "http://gateway:8080/function/token/jwks.json",
}
SECRETS_DIR = "/run/secrets"
SECRETS_SOURCE = "../../.local/compose-secrets"


def environment(fn: Function) -> dict[str, str]:
    env = dict(fn.environment)
    env.update({k: v for k, v in OVERRIDES.items() if k in env})
    env["SECRETS_DIR"] = SECRETS_DIR
    return env


def compose_secret_names(stack: Stack | None = None) -> list[str]:
    """Every secret a compose service mounts (the functions' and the platform's)."""
    if stack is None:
        from infra.generate.common import load_stack

        stack = load_stack({})
    return sorted(set(stack.secret_names()) | set(PLATFORM_SECRETS))


def _bytes(quantity: str) -> str:
    """Kubernetes ``2Gi`` → compose ``2g`` (compose byte units are binary)."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    if not match:
        raise ValueError(f"unsupported memory quantity {quantity!r}")
    return match.group(1) + match.group(2)[0].lower()


def compose_file(stack: Stack) -> dict[str, Any]:
    functions = list(stack.functions.values())
    migrations = stack.functions[MIGRATIONS_IMAGE_OF]
    services: dict[str, Any] = {
        "postgres": {
            "image": "postgres:16-alpine",
            "environment": {"POSTGRES_USER": "scanline", "POSTGRES_DB": "scanline",
                            "POSTGRES_PASSWORD_FILE": f"{SECRETS_DIR}/postgres-password"},
            "secrets": ["postgres-password"],
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": {"test": ["CMD", "pg_isready", "-U", "scanline"],
                            "interval": "5s", "retries": 20},
        },
        "rabbitmq": {
            "image": "rabbitmq:3.13-management",
            "hostname": "rabbitmq",
            "environment": {"RABBITMQ_DEFAULT_USER": "scanline"},
            "entrypoint": ["sh", "-c", 'RABBITMQ_DEFAULT_PASS="$$(cat '
                           f'{SECRETS_DIR}/rabbitmq-password)" exec docker-entrypoint.sh '
                           "rabbitmq-server"],
            "secrets": ["rabbitmq-password"],
            "ports": ["127.0.0.1:15672:15672"],
            "volumes": ["rabbitmq-data:/var/lib/rabbitmq"],
            "healthcheck": {"test": ["CMD", "rabbitmq-diagnostics", "-q", "ping"],
                            "interval": "5s", "retries": 30},
        },
        "minio": {
            "image": "minio/minio:RELEASE.2024-10-13T13-34-11Z",
            "command": ["server", "/data", "--console-address", ":9001"],
            "environment": {"MINIO_ROOT_USER_FILE": f"{SECRETS_DIR}/s3-access-key",
                            "MINIO_ROOT_PASSWORD_FILE": f"{SECRETS_DIR}/s3-secret-key"},
            "secrets": ["s3-access-key", "s3-secret-key"],
            "ports": ["127.0.0.1:9001:9001"],
            "volumes": ["minio-data:/data"],
            "healthcheck": {"test": ["CMD", "mc", "ready", "local"], "interval": "5s",
                            "retries": 20},
        },
        "minio-init": {
            "image": "minio/mc:RELEASE.2024-10-08T09-37-26Z",
            "entrypoint": ["sh", "-c", "mc alias set local http://minio:9000 "
                           f'"$$(cat {SECRETS_DIR}/s3-access-key)" '
                           f'"$$(cat {SECRETS_DIR}/s3-secret-key)" && '
                           "mc mb --ignore-existing local/scanline-uploads"],
            "secrets": ["s3-access-key", "s3-secret-key"],
            "depends_on": {"minio": {"condition": "service_healthy"}},
        },
        "mailpit": {"image": "axllent/mailpit:v1.20",
                    "ports": ["127.0.0.1:8025:8025"]},
        # The release step, with the release's own image, before any function starts.
        "migrate": {
            # Built like that function's service (the same context and image name), so
            # compose never tries to pull an image that exists only locally.
            "build": {"context": f"../../build/{migrations.name}"},
            "image": migrations.image,
            "entrypoint": ["python", "-m", "scanline.migrations"],
            "environment": {"PYTHONPATH": "/home/app/function",
                            "DATABASE_URL": OVERRIDES["DATABASE_URL"],
                            "SECRETS_DIR": SECRETS_DIR},
            "secrets": ["postgres-password"],
            "depends_on": {"postgres": {"condition": "service_healthy"}},
        },
        # The connector (infra/connector): declares the quorum queues, then delivers each
        # to the function service of the same name on the watchdog's port.
        "connector": {
            "build": {"context": "../..", "dockerfile": "infra/connector/Dockerfile"},
            "image": sibling_image(functions[0], CONNECTOR),
            "environment": {"RABBITMQ_URL": OVERRIDES["RABBITMQ_URL"],
                            "SECRETS_DIR": SECRETS_DIR,
                            "FUNCTION_URL_TEMPLATE": f"http://{{name}}:{WATCHDOG_PORT}/"},
            "secrets": ["rabbitmq-password"],
            "read_only": True,
            "depends_on": {"rabbitmq": {"condition": "service_healthy"}},
        },
        "gateway": {
            "image": "nginx:1.27-alpine",
            "ports": ["127.0.0.1:8080:8080"],
            "volumes": ["./gateway.conf:/etc/nginx/conf.d/default.conf:ro"],
            "depends_on": [fn.name for fn in functions],
        },
    }
    ready = {"migrate": {"condition": "service_completed_successfully"},
             "connector": {"condition": "service_started"},
             "minio-init": {"condition": "service_completed_successfully"}}
    for fn in functions:
        service: dict[str, Any] = {
            "build": {"context": f"../../build/{fn.name}"},
            "image": fn.image,
            "environment": environment(fn),
            "secrets": list(fn.secrets),
            "read_only": fn.readonly_root_filesystem,
            "tmpfs": ["/tmp"],
            "depends_on": ready,
        }
        if fn.build_args:
            service["build"]["args"] = dict(fn.build_args)
        if fn.limits.get("memory"):
            service["mem_limit"] = _bytes(fn.limits["memory"])
        services[fn.name] = service
    return {
        "services": services,
        "secrets": {s: {"file": f"{SECRETS_SOURCE}/{s}"} for s in compose_secret_names(stack)},
        "volumes": {"postgres-data": {}, "rabbitmq-data": {}, "minio-data": {}},
    }


def gateway_conf(stack: Stack) -> str:
    """nginx in front of the compose functions, with the gateway's URL scheme."""
    functions = list(stack.functions.values())
    longest = max(math.ceil(fn.timeout("write_timeout")) for fn in functions)
    blocks = [HEADER.rstrip(), "server {", "    listen 8080;",
              "    client_max_body_size 25m;",
              f"    proxy_read_timeout {longest + 5}s;",
              "    proxy_request_buffering off;"]
    for fn in (fn for fn in functions if not fn.event_only):
        blocks += [f"    location = /function/{fn.name} {{ proxy_pass http://{fn.name}:"
                   f"{WATCHDOG_PORT}/; }}",
                   f"    location /function/{fn.name}/ {{ proxy_pass http://{fn.name}:"
                   f"{WATCHDOG_PORT}/; }}"]
    blocks.append("}")
    return "\n".join(blocks) + "\n"
