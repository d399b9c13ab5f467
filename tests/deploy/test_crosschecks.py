"""stack.yml, the code and every generated manifest tell the same story.

Event types and secret names are read from the code itself (the handlers' ``events.X``
usage and the ``secrets.read``/``_optional_secret`` literals), so a handler that stops
emitting an event, or a new secret nobody mounts, fails here before a deployment does.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from infra import generate
from infra.generate import COMPOSE_OVERRIDES, KNATIVE_OVERRIDES, REPO, trigger_name
from scanline import events
from scanline.secrets import SECRET_KINDS
from tests.deploy.manifests import documents, functions

CODE = [*sorted((REPO / "functions").glob("*/handler.py")),
        *sorted((REPO / "scanline").rglob("*.py"))]


def _event_constant(node: ast.AST) -> str | None:
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "events" and isinstance(getattr(events, node.attr, None), str)):
        return getattr(events, node.attr)
    return None


def emitted_types(paths: list[Path]) -> set[str]:
    """Types passed to ``<something>.event(events.X, ...)`` (``deps.event``)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "event" and node.args):
                constant = _event_constant(node.args[0])
                if constant:
                    found.add(constant)
    return found


def accepted_types(handler: Path) -> set[str]:
    """Types the handler compares ``event.type`` with (``==``, ``!=``, ``in``)."""
    found = set()
    for node in ast.walk(ast.parse(handler.read_text())):
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute)
                and node.left.attr == "type"):
            for comparator in node.comparators:
                items = (comparator.elts if isinstance(comparator, ast.Tuple | ast.Set)
                         else [comparator])
                found |= {c for c in map(_event_constant, items) if c}
    return found


def test_every_topic_is_emitted_by_some_function_and_accepted_by_its_subscriber() -> None:
    emitted = emitted_types(CODE)
    subscribed = {fn.name: fn.topics for fn in functions().values() if fn.topics}
    assert subscribed, "no function subscribes to any event"
    for name, topics in subscribed.items():
        handler = REPO / "functions" / name / "handler.py"
        for topic in topics:
            assert topic in emitted, f"{name} subscribes to {topic}, which nothing emits"
            assert topic in accepted_types(handler), f"{name}'s handler does not accept {topic}"


def test_the_ast_scan_sees_the_known_event_flow() -> None:
    # Guards the scanner itself: these come straight from DESIGN.md's table.
    emitted = emitted_types(CODE)
    assert {events.USER_REGISTERED, events.EMAIL_REQUESTED, events.OCR_REQUESTED} <= emitted
    assert accepted_types(REPO / "functions/send-email/handler.py") == {events.EMAIL_REQUESTED}


def test_knative_triggers_match_topic_annotations_one_to_one() -> None:
    triggers = [d for d in documents(REPO / "infra/knative/eventing.yaml")
                if d["kind"] == "Trigger"]
    actual = {(t["spec"]["subscriber"]["ref"]["name"], t["spec"]["filter"]["attributes"]["type"])
              for t in triggers}
    expected = {(fn.name, topic) for fn in functions().values() for topic in fn.topics}
    assert actual == expected
    assert len(triggers) == len(expected)
    for trigger in triggers:
        name, topic = trigger["spec"]["subscriber"]["ref"]["name"], \
            trigger["spec"]["filter"]["attributes"]["type"]
        assert trigger["metadata"]["name"] == trigger_name(name, topic)
        assert trigger["spec"]["delivery"]["deadLetterSink"]["ref"]["name"]


def test_openfaas_queues_keda_and_topology_name_the_same_topics() -> None:
    topics = {t for fn in functions().values() for t in fn.topics}
    values = yaml.safe_load((REPO / "infra/openfaas/rabbitmq-connector-values.yaml").read_text())
    assert {q["name"] for q in values["queues"]} == topics
    configmap = next(d for d in documents(REPO / "infra/openfaas/rabbitmq-topology.yaml")
                     if d["kind"] == "ConfigMap")
    script = configmap["data"]["declare.sh"]
    for topic in topics:
        assert f"put queues/%2F/{topic} " in script and '"x-queue-type":"quorum"' in script
    scaled = next(d for d in documents(REPO / "infra/keda/ocr-scaledobject.yaml")
                  if d["kind"] == "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert [trigger["metadata"]["queueName"]] == functions()["ocr"].topics


_SECRET_READ = re.compile(r"""(?:secrets\.read|_optional_secret)\(\s*["']([a-z0-9-]+)["']""")


def test_secrets_named_in_stack_yml_are_exactly_those_the_code_reads() -> None:
    read = {m for path in CODE for m in _SECRET_READ.findall(path.read_text())}
    named = {s for fn in functions().values() for s in fn.secrets}
    assert read, "no secret reads found: the scanner is broken"
    assert named - read == set(), f"mounted but never read: {named - read}"
    assert read - named == set(), f"read but never mounted: {read - named}"
    assert read <= set(SECRET_KINDS)


def test_only_the_token_function_holds_the_signing_keys() -> None:
    signing = {"jwt-signing-key", "jwt-previous-signing-key"}
    holders = {fn.name for fn in functions().values() if signing & set(fn.secrets)}
    assert holders == {"token"}
    verifiers = {fn.name for fn in functions().values() if "JWKS_URL" in fn.environment}
    assert "ocr-jobs" in verifiers and not verifiers & holders


def test_knative_mounts_each_functions_secrets_where_the_runtime_reads_them() -> None:
    for service in documents(REPO / "infra/knative/services.yaml"):
        fn = functions()[service["metadata"]["name"]]
        spec = service["spec"]["template"]["spec"]
        mounted = [s["secret"]["name"] for v in spec.get("volumes", [])
                   for s in v["projected"]["sources"]]
        assert mounted == fn.secrets
        if fn.secrets:
            assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/var/openfaas/secrets"


def test_environment_agrees_across_stack_knative_and_compose() -> None:
    compose = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    for service in documents(REPO / "infra/knative/services.yaml"):
        fn = functions()[service["metadata"]["name"]]
        knative_env = {e["name"]: e["value"] for e in
                       service["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert knative_env == {k: KNATIVE_OVERRIDES.get(k, v)
                               for k, v in fn.environment.items()}, fn.name
        assert "PORT" not in knative_env, "Knative reserves PORT"
        compose_env = compose["services"][fn.name]["environment"]
        assert set(compose_env) == set(fn.environment) | {"SECRETS_DIR"}, fn.name
        for key, value in fn.environment.items():
            assert compose_env[key] == COMPOSE_OVERRIDES.get(key, value), (fn.name, key)
        assert compose["services"][fn.name]["secrets"] == fn.secrets
        assert compose_env.get("FUNCTION_NAME") == fn.name


def test_timeouts_nest_from_handler_to_gateway() -> None:
    gateway = yaml.safe_load((REPO / "infra/openfaas/openfaas-values.yaml").read_text())["gateway"]
    upstream = generate._duration_seconds(gateway["upstreamTimeout"])
    assert generate._duration_seconds(gateway["readTimeout"]) > upstream
    assert generate._duration_seconds(gateway["writeTimeout"]) > upstream
    services = {s["metadata"]["name"]: s for s in documents(REPO / "infra/knative/services.yaml")}
    for fn in functions().values():
        exec_timeout = fn.timeout("exec_timeout")
        assert exec_timeout < fn.timeout("read_timeout") <= exec_timeout + 10, fn.name
        assert exec_timeout < fn.timeout("write_timeout") <= exec_timeout + 10, fn.name
        assert fn.timeout("write_timeout") <= upstream, fn.name
        knative = services[fn.name]["spec"]["template"]["spec"]["timeoutSeconds"]
        assert fn.timeout("write_timeout") <= knative <= 600, fn.name


def test_ocr_is_capacity_scaled_with_a_hard_inflight_limit() -> None:
    ocr = functions()["ocr"]
    assert ocr.labels["com.openfaas.scale.type"] == "capacity"
    assert int(ocr.labels["com.openfaas.scale.target"]) == ocr.max_inflight > 0
    assert ocr.max_inflight >= int(ocr.environment["OCR_BATCH_SIZE"])
    service = next(s for s in documents(REPO / "infra/knative/services.yaml")
                   if s["metadata"]["name"] == "ocr")
    assert service["spec"]["template"]["spec"]["containerConcurrency"] == ocr.max_inflight


def test_ocr_image_bakes_weights_where_the_function_looks() -> None:
    dockerfile = (REPO / "templates/python3-flask-cloudevents/Dockerfile").read_text()
    cache_dir = re.search(r"KERAS_OCR_CACHE_DIR=(\S+)", dockerfile).group(1)
    ocr = functions()["ocr"]
    assert ocr.environment["OCR_MODEL_DIR"] == cache_dir
    assert ocr.spec["build_args"]["MODEL_WEIGHTS"] == "keras-ocr"


def test_compose_runs_the_local_trigger_against_the_function_services() -> None:
    compose = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    trigger = compose["services"]["trigger"]
    template = trigger["environment"]["FUNCTION_URL_TEMPLATE"]
    assert template.format(name="ocr", port=0) == "http://ocr:8080/"
    assert trigger["build"]["dockerfile"] == "infra/compose/trigger.Dockerfile"
    assert (REPO / trigger["build"]["dockerfile"]).is_file()
    for name in (fn.name for fn in functions().values() if fn.topics):
        assert name in compose["services"]
        assert compose["services"][name]["depends_on"]["trigger"] == {
            "condition": "service_started"}
