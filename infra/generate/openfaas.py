"""OpenFaaS (CE or Pro): Function resources, the connector, the release Job, the secrets script.

``functions.yaml`` is what ``faas-cli generate --api=openfaas.com/v1`` prints for stack.yml
(a test compares them), for clusters run by the OpenFaaS operator or GitOps; ``faas-cli up``
reads stack.yml itself. ``connector.yaml`` runs ``infra.connector`` as a Deployment next to
the gateway: it declares the quorum queues and feeds every subscribing function through
the gateway. ``migrations-job.yaml`` is the release step that runs before any function
of that release starts.
"""

from __future__ import annotations

from typing import Any

from infra.generate.common import (
    CONNECTOR,
    CONNECTOR_METRICS_PORT,
    FUNCTION_NAMESPACE,
    HEADER,
    NAMESPACE,
    NON_ROOT,
    OPENFAAS_NAMESPACE,
    REPO,
    SCRAPE,
    SCRAPE_PORT,
    SECRETS_MOUNT,
    WATCHDOG_PORT,
    dns_label,
    image_tag,
    labels_for,
    secret_volume,
    sibling_image,
)
from infra.local.stackfile import Function, Stack

GATEWAY = f"http://gateway.{OPENFAAS_NAMESPACE}:{WATCHDOG_PORT}"
MIGRATIONS_IMAGE_OF = "register"  # any function image carries scanline and Alembic
PLATFORM_SECRETS = ("postgres-password", "rabbitmq-password", "s3-access-key", "s3-secret-key")


def function_resource(fn: Function) -> dict[str, Any]:
    """The ``openfaas.com/v1`` Function faas-cli makes of one stack.yml entry."""
    spec: dict[str, Any] = {"name": fn.name, "image": fn.image}
    for key, value in (("environment", fn.environment), ("labels", fn.labels),
                       ("annotations", fn.annotations), ("limits", fn.limits),
                       ("requests", fn.requests)):
        if value:
            spec[key] = dict(sorted(value.items()))
    if fn.secrets:
        spec["secrets"] = list(fn.secrets)
    if fn.readonly_root_filesystem:
        spec["readOnlyRootFilesystem"] = True
    return {"apiVersion": "openfaas.com/v1", "kind": "Function",
            "metadata": {"name": fn.name, "namespace": FUNCTION_NAMESPACE}, "spec": spec}


def function_resources(stack: Stack) -> list[dict[str, Any]]:
    return [function_resource(fn) for _, fn in sorted(stack.functions.items())]


def _broker_url(stack: Stack) -> str:
    """The functions' own ``RABBITMQ_URL``: the connector talks to the same broker."""
    urls = {fn.environment["RABBITMQ_URL"] for fn in stack.functions.values()
            if "RABBITMQ_URL" in fn.environment}
    if len(urls) != 1:
        raise ValueError(f"functions disagree on RABBITMQ_URL: {sorted(urls)}")
    return urls.pop()


def connector_objects(stack: Stack) -> list[dict[str, Any]]:
    """``infra.connector`` as a Deployment in the gateway's namespace, invoking through it."""
    first = next(iter(stack.functions.values()))
    labels = labels_for(CONNECTOR)
    env = {
        "RABBITMQ_URL": _broker_url(stack),
        "SECRETS_DIR": SECRETS_MOUNT,
        "FUNCTION_URL_TEMPLATE": f"{GATEWAY}/function/{{name}}",
        # Feed every replica a function may scale to; the rest waits in the queue (KEDA).
        "TRIGGER_REPLICAS": "max",
        "METRICS_PORT": str(CONNECTOR_METRICS_PORT),
    }
    container = {
        "name": "connector", "image": sibling_image(first, CONNECTOR),
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "metrics", "containerPort": CONNECTOR_METRICS_PORT}],
        # The metrics server runs in the connector's own process: alive means it answers.
        "livenessProbe": {"tcpSocket": {"port": CONNECTOR_METRICS_PORT},
                          "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": NON_ROOT,
        "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}],
    }
    return [{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": CONNECTOR, "namespace": OPENFAAS_NAMESPACE, "labels": labels},
        "spec": {
            # One consumer per queue is enough (its prefetch is the concurrency); a second
            # replica would only double it past what the functions can take.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {SCRAPE: "true",
                                             SCRAPE_PORT: str(CONNECTOR_METRICS_PORT)}},
                "spec": {"terminationGracePeriodSeconds": 150,
                         "containers": [container],
                         "volumes": [secret_volume(["rabbitmq-password"])]},
            },
        },
    }]


def migrations_job(stack: Stack) -> dict[str, Any]:
    """``scanline-migrate-<tag>``: one Job per release, with the release's own image.

    A new tag is a new Job (a Job's pod template cannot change, so reusing one name would
    block upgrades); re-running a release deletes its Job and applies it again. Alembic
    upgrades are idempotent and serialised by an advisory lock (scanline/migrations/env.py),
    so a re-run or two overlapping releases are safe.
    """
    source = stack.functions[MIGRATIONS_IMAGE_OF]
    tag = image_tag(source)
    labels = {**labels_for("scanline-migrate"), "app.kubernetes.io/version": dns_label(tag)}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"scanline-migrate-{dns_label(tag, 46)}", "namespace": NAMESPACE,
                     "labels": labels},
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            # Kept a week for its logs; applying it again after that runs it again (safe).
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "migrate", "image": source.image,
                        "command": ["python", "-m", "scanline.migrations"],
                        "env": [{"name": "PYTHONPATH", "value": "/home/app/function"},
                                {"name": "DATABASE_URL",
                                 "value": source.environment["DATABASE_URL"]},
                                {"name": "SECRETS_DIR", "value": SECRETS_MOUNT}],
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": NON_ROOT,
                        "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT,
                                          "readOnly": True}],
                    }],
                    "volumes": [secret_volume(["postgres-password"])],
                },
            },
        },
    }


def secrets_script(stack: Stack) -> str:
    template = (REPO / "infra" / "openfaas" / "create-secrets.sh.in").read_text()
    return (template.replace("@HEADER@", HEADER.rstrip())
            .replace("@FUNCTION_SECRETS@", " ".join(stack.secret_names()))
            .replace("@PLATFORM_SECRETS@", " ".join(PLATFORM_SECRETS)))
