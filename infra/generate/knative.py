"""Knative Serving + Eventing (eventing-rabbitmq): one Service per function, the Broker, its
Triggers (from the ``topic`` annotations), the SinkBinding, and the dead-letter sink."""

from __future__ import annotations

import math
from typing import Any

from infra.generate.common import (
    CONNECTOR,
    NAMESPACE,
    NON_ROOT,
    PART_OF,
    SECRETS_MOUNT,
    WATCHDOG_PORT,
    labels_for,
    resources,
    scrape_annotations,
    secret_volume,
    sibling_image,
)
from infra.local.stackfile import Function, Stack
from scanline.adapters.topology import DELIVERY_LIMIT

BROKER = "scanline"
DEAD_LETTER_SINK = "scanline-dead-letters"
# Knative has no OpenFaaS gateway: the token Service answers at its own root.
OVERRIDES = {"JWKS_URL": f"http://token.{NAMESPACE}.svc.cluster.local/jwks.json"}


def environment(fn: Function) -> dict[str, str]:
    env = dict(fn.environment)
    env.update({k: v for k, v in OVERRIDES.items() if k in env})
    return env


# Knative admits emptyDir volumes only behind a feature flag (kubernetes.podspec-emptydir),
# so its containers keep a writable root (/tmp for the watchdog's lock file); the image
# still owns its code as root and runs as uid 10001.
SECURITY = {k: v for k, v in NON_ROOT.items() if k != "readOnlyRootFilesystem"}


def service(fn: Function) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "function",
        "image": fn.image,
        "ports": [{"name": "http1", "containerPort": WATCHDOG_PORT}],
        "env": [{"name": k, "value": v} for k, v in environment(fn).items()],
        # ready_path: the watchdog asks the function, which checks what it depends on.
        "readinessProbe": {"httpGet": {"path": "/_/ready"}, "periodSeconds": 5},
        "resources": resources(fn),
        "securityContext": SECURITY,
    }
    spec: dict[str, Any] = {
        # The watchdog enforces max_inflight; Knative must not send more than that.
        "containerConcurrency": fn.max_inflight,
        "timeoutSeconds": math.ceil(fn.timeout("write_timeout")),
        "containers": [container],
    }
    if fn.secrets:
        container["volumeMounts"] = [
            {"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}]
        spec["volumes"] = [secret_volume(fn.secrets)]
    annotations = {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/min-scale": str(fn.scale("min", 1)),
        "autoscaling.knative.dev/max-scale": str(fn.scale("max", 5)),
        "autoscaling.knative.dev/target": str(fn.scale("target", 10)),
        **scrape_annotations(fn),
    }
    service_labels = labels_for(fn.name)
    if fn.event_only:
        # Only the broker's triggers reach it: no route from outside the cluster.
        service_labels["networking.knative.dev/visibility"] = "cluster-local"
    return {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": fn.name, "namespace": NAMESPACE, "labels": service_labels},
        "spec": {"template": {"metadata": {"labels": labels_for(fn.name),
                                           "annotations": annotations},
                              "spec": spec}},
    }


def services(stack: Stack) -> list[dict[str, Any]]:
    return [service(fn) for fn in stack.functions.values()]


def _ref(api_version: str, kind: str, name: str) -> dict[str, str]:
    return {"apiVersion": api_version, "kind": kind, "name": name}


def trigger_name(fn: str, topic: str) -> str:
    """``send-email`` + ``io.scanline.email.requested.v1`` → ``send-email--email-requested-v1``."""
    short = topic.removeprefix("io.scanline.").replace(".", "-")
    return f"{fn}--{short}"


def dead_letter_sink(stack: Stack) -> dict[str, Any]:
    """``infra.connector.deadletter_sink``: dead letters into ``scanline.<fn>.dlq`` with
    their reason, replayable with ``infra.local.deadletters`` (not just logged)."""
    first = next(iter(stack.functions.values()))
    rabbitmq = next(fn.environment["RABBITMQ_URL"] for fn in stack.functions.values()
                    if "RABBITMQ_URL" in fn.environment)
    return {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": DEAD_LETTER_SINK, "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/name": DEAD_LETTER_SINK,
                                "networking.knative.dev/visibility": "cluster-local"}},
        "spec": {"template": {
            "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
            "spec": {
                "containers": [{
                    "name": "sink", "image": sibling_image(first, CONNECTOR),
                    "command": ["python", "-m", "infra.connector.deadletter_sink"],
                    "ports": [{"name": "http1", "containerPort": WATCHDOG_PORT}],
                    "env": [{"name": "RABBITMQ_URL", "value": rabbitmq},
                            {"name": "SECRETS_DIR", "value": SECRETS_MOUNT}],
                    "resources": {"requests": {"cpu": "25m", "memory": "64Mi"},
                                  "limits": {"memory": "128Mi"}},
                    "securityContext": SECURITY,
                    "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT,
                                      "readOnly": True}],
                }],
                "volumes": [secret_volume(["rabbitmq-password"])],
            }}},
    }


def eventing(stack: Stack) -> list[dict[str, Any]]:
    dead_letter = {"ref": _ref("serving.knative.dev/v1", "Service", DEAD_LETTER_SINK)}
    delivery = {"retry": DELIVERY_LIMIT, "backoffPolicy": "exponential",
                "backoffDelay": "PT0.5S", "deadLetterSink": dead_letter}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "RabbitmqBrokerConfig",
         "metadata": {"name": BROKER, "namespace": NAMESPACE},
         "spec": {"queueType": "quorum",
                  # Secret with keys uri (management URL), username, password.
                  "rabbitmqClusterReference": {
                      "connectionSecret": {"name": "rabbitmq-broker-connection"},
                      "namespace": NAMESPACE}}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": {"name": BROKER, "namespace": NAMESPACE,
                      "annotations": {"eventing.knative.dev/broker.class": "RabbitMQBroker"}},
         "spec": {"config": _ref("eventing.knative.dev/v1alpha1", "RabbitmqBrokerConfig",
                                 BROKER),
                  "delivery": delivery}},
        dead_letter_sink(stack),
        {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
         "metadata": {"name": "scanline-events", "namespace": NAMESPACE},
         # Injects K_SINK into every Scanline Service: the runtime then publishes over HTTP.
         "spec": {"subject": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                              "selector": {"matchLabels": dict(PART_OF)}},
                  "sink": {"ref": _ref("eventing.knative.dev/v1", "Broker", BROKER)}}},
    ]
    for fn in stack.functions.values():
        for topic in fn.topics:
            objects.append({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                "metadata": {"name": trigger_name(fn.name, topic), "namespace": NAMESPACE,
                             "annotations": {"rabbitmq.eventing.knative.dev/parallelism":
                                             str(fn.max_inflight or 10)}},
                "spec": {"broker": BROKER, "filter": {"attributes": {"type": topic}},
                         "subscriber": {"ref": _ref("serving.knative.dev/v1", "Service",
                                                    fn.name)},
                         "delivery": delivery},
            })
    return objects
