"""KEDA: scale the ocr Deployment (faas-netes, ``openfaas-fn``) on its queue's depth.

The connector holds at most what the function's replicas can take at once, so the rest stays
in ``scanline.ocr``; the management API's count (``protocol: http``) includes the messages
in flight as well as the ready ones, so depth per replica is exactly the work per replica.
"""

from __future__ import annotations

from typing import Any

from infra.generate.common import FUNCTION_NAMESPACE
from infra.local.stackfile import Stack
from scanline.adapters.topology import queue_name

SCALED = "ocr"


def objects(stack: Stack) -> list[dict[str, Any]]:
    fn = stack.functions[SCALED]
    return [
        {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
         "metadata": {"name": f"rabbitmq-{SCALED}", "namespace": FUNCTION_NAMESPACE},
         # Secret key ``host``: http://scanline:<password>@rabbitmq.scanline:15672/%2F
         # (infra/openfaas/create-secrets.sh makes it).
         "spec": {"secretTargetRef": [
             {"parameter": "host", "name": "keda-rabbitmq", "key": "host"}]}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
         "metadata": {"name": SCALED, "namespace": FUNCTION_NAMESPACE},
         "spec": {
             "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SCALED},
             "minReplicaCount": fn.scale("min", 1),
             "maxReplicaCount": fn.scale("max", 5),
             "pollingInterval": 5, "cooldownPeriod": 120,
             "triggers": [{"type": "rabbitmq",
                           "authenticationRef": {"name": f"rabbitmq-{SCALED}"},
                           "metadata": {"protocol": "http", "mode": "QueueLength",
                                        "queueName": queue_name(SCALED),
                                        "value": str(fn.max_inflight)}}],
         }},
    ]
