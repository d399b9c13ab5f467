"""stack.yml, the code and every generated manifest tell the same story.

What each function consumes and emits is read from its handler's declared ``routes``, and
the secrets it reads from the code itself (``secrets.read``/``_optional_secret`` literals
plus the event keys its routes imply), so a handler that stops emitting an event, or a
new secret nobody mounts, fails here before a deployment does.
"""

from __future__ import annotations

import re

import yaml

from infra.connector.trigger import Deliverer
from infra.generate import compose, knative
from infra.generate.common import REPO
from infra.generate.knative import trigger_name
from infra.local.stackfile import duration_seconds, load
from infra.openapi import load_handler
from scanline import payloads
from scanline.adapters.topology import dead_letter_queue, queue_name
from scanline.runtime.injection import plan_event, plan_hook, plan_operation, readiness
from scanline.runtime.routing import Routes
from scanline.secrets import (
    EVENT_KEYRING,
    SEAL_KEY,
    SEAL_PUBLIC_KEY,
    SECRET_KINDS,
    event_key_secret,
)
from tests.deploy.manifests import documents, functions

CODE = [*sorted((REPO / "functions").glob("*/handler.py")),
        *sorted((REPO / "scanline").rglob("*.py"))]
STACK = load(environ={})
ROUTES: dict[str, Routes] = {name: load_handler(STACK, name).routes for name in STACK.functions}


def emits(name: str) -> set[str]:
    return {p.TYPE for _, types in ROUTES[name].views() for p in types}


def consumes(name: str) -> set[str]:
    return set(ROUTES[name].events)


def key_secrets(name: str) -> set[str]:
    """The key secrets ``name`` needs, from the readiness checks its runtime derives (what
    it signs, verifies, seals and opens), so the test follows the runtime, not a list."""
    routes = ROUTES[name]
    plans = [*(plan_operation(name, op) for op in routes.operations),
             *(plan_event(name, handler) for handler in routes.events.values()),
             *(plan_hook(name, hook) for hook in routes.start_hooks)]
    secret_of_check = {"event-signing-key": event_key_secret(name),
                       "event-keyring": EVENT_KEYRING,
                       "seal-key": SEAL_KEY, "seal-public-key": SEAL_PUBLIC_KEY}
    return {secret_of_check[c] for c in readiness(routes, plans) if c in secret_of_check}


def test_topics_are_exactly_the_event_handlers_and_each_is_emitted_by_an_allowed_producer(
        ) -> None:
    for name, fn in functions().items():
        assert set(fn.topics) == consumes(name), name
        for topic in fn.topics:
            producers = {p for p in STACK.functions if topic in emits(p)}
            assert producers, f"{name} subscribes to {topic}, which nothing emits"
            payload = payloads.by_type(topic)
            assert payload is not None and producers <= payload.PRODUCERS, topic


def test_every_emitted_type_is_consumed_or_is_a_notification() -> None:
    # email.sent, user.verified and ocr.completed are for outside subscribers (Knative
    # triggers, a webhook); everything else must reach a function.
    consumed = {t for name in STACK.functions for t in consumes(name)}
    emitted = {t for name in STACK.functions for t in emits(name)}
    notifications = {payloads.EmailSent.TYPE, payloads.UserVerified.TYPE,
                     payloads.OcrCompleted.TYPE}
    assert emitted - consumed == notifications
    assert {payloads.UserRegistered.TYPE, payloads.EmailRequested.TYPE,
            payloads.OcrRequested.TYPE} <= consumed


def test_functions_with_no_http_operation_are_marked_event_only() -> None:
    for name, fn in STACK.functions.items():
        assert fn.event_only == (not ROUTES[name].operations), name


_SECRET_READ = re.compile(r"""(?:secrets\.read|_optional_secret)\(\s*["']([a-z0-9-]+)["']""")


def read_by_code() -> set[str]:
    return {m for path in CODE for m in _SECRET_READ.findall(path.read_text())}


def test_secrets_named_in_stack_yml_are_exactly_those_the_code_reads() -> None:
    read = read_by_code()
    named = {s for fn in functions().values() for s in fn.secrets}
    keys = {s for n in STACK.functions for s in key_secrets(n)}
    assert read, "no secret reads found: the scanner is broken"
    assert named - read - keys == set(), "mounted but never read"
    assert read - named == set(), f"read but never mounted: {read - named}"
    assert read <= set(SECRET_KINDS)


def test_each_function_mounts_exactly_the_keys_its_routes_need() -> None:
    # Its own signing key if it emits, the keyring if it verifies (events or /event-keys),
    # the seal public key if it emits a sealed type, the seal private key if it opens one.
    shared_keys = {SEAL_KEY, SEAL_PUBLIC_KEY, EVENT_KEYRING}
    for name, fn in functions().items():
        mounted = {s for s in fn.secrets
                   if s.startswith(event_key_secret("")) or s in shared_keys}
        assert mounted == key_secrets(name), name
    assert {n for n in STACK.functions if SEAL_KEY in key_secrets(n)} == {"send-email"}
    assert event_key_secret("send-email") in key_secrets("send-email")


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


def test_one_queue_name_per_function_on_every_target() -> None:
    """The connector consumes scanline.<fn>; KEDA watches the same queue; Knative's dead
    letters land in scanline.<fn>.dlq, where infra.local.deadletters reads them."""
    scaled = next(d for d in documents(REPO / "infra/keda/ocr-scaledobject.yaml")
                  if d["kind"] == "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["mode"] == "QueueLength"
    # Management-API counts include the messages the connector holds in flight.
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["queueName"] == queue_name("ocr")
    assert trigger["metadata"]["value"] == str(functions()["ocr"].max_inflight)
    assert dead_letter_queue("ocr") == "scanline.ocr.dlq"


def test_connector_invokes_through_the_gateway_with_the_functions_broker() -> None:
    (deployment,) = documents(REPO / "infra/openfaas/connector.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FUNCTION_URL_TEMPLATE"].format(name="ocr") == \
        "http://gateway.openfaas:8080/function/ocr"
    assert {fn.environment.get("RABBITMQ_URL") for fn in functions().values()} - {None} == \
        {env["RABBITMQ_URL"]}
    assert env["TRIGGER_REPLICAS"] == "max"
    assert "@" not in env["RABBITMQ_URL"].split("//", 1)[1].split("/", 1)[0].replace(
        "scanline@", ""), "no password in the URL"
    assert container["image"].rsplit("/", 1)[1] == "scanline-connector:latest"


def test_migrations_job_is_named_by_the_release_and_uses_its_image() -> None:
    (job,) = documents(REPO / "infra/openfaas/migrations-job.yaml")
    register = functions()["register"]
    assert job["metadata"]["name"] == "scanline-migrate-latest"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == register.image
    assert container["command"] == ["python", "-m", "scanline.migrations"]


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
        assert mounted == list(fn.secrets)
        if fn.secrets:
            mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
            assert mounts["secrets"] == "/var/openfaas/secrets"


def test_environment_agrees_across_stack_knative_and_compose() -> None:
    composed = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    for service in documents(REPO / "infra/knative/services.yaml"):
        fn = functions()[service["metadata"]["name"]]
        knative_env = {e["name"]: e["value"] for e in
                       service["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert knative_env == {k: knative.OVERRIDES.get(k, v)
                               for k, v in fn.environment.items()}, fn.name
        assert "PORT" not in knative_env, "Knative reserves PORT"
        compose_env = composed["services"][fn.name]["environment"]
        assert set(compose_env) == set(fn.environment) | {"SECRETS_DIR"}, fn.name
        for key, value in fn.environment.items():
            assert compose_env[key] == compose.OVERRIDES.get(key, value), (fn.name, key)
        assert composed["services"][fn.name]["secrets"] == list(fn.secrets)
        assert compose_env.get("FUNCTION_NAME") == fn.name


def test_timeouts_nest_from_handler_to_gateway() -> None:
    gateway = yaml.safe_load((REPO / "infra/openfaas/openfaas-values.yaml").read_text())["gateway"]
    upstream = duration_seconds(gateway["upstreamTimeout"])
    assert duration_seconds(gateway["readTimeout"]) > upstream
    assert duration_seconds(gateway["writeTimeout"]) > upstream
    services = {s["metadata"]["name"]: s for s in documents(REPO / "infra/knative/services.yaml")}
    for fn in functions().values():
        exec_timeout = fn.timeout("exec_timeout")
        assert exec_timeout < fn.timeout("read_timeout") <= exec_timeout + 10, fn.name
        assert exec_timeout < fn.timeout("write_timeout") <= exec_timeout + 10, fn.name
        assert fn.timeout("write_timeout") <= upstream, fn.name
        knative = services[fn.name]["spec"]["template"]["spec"]["timeoutSeconds"]
        assert fn.timeout("write_timeout") <= knative <= 600, fn.name
        if fn.topics:
            # The connector waits exec_timeout + 5 s through the gateway: it must let it.
            waited = Deliverer(fn, timeout=0).timeout
            assert fn.timeout("exec_timeout") < waited <= upstream, fn.name


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
    assert ocr.build_args["MODEL_WEIGHTS"] == "keras-ocr"


def test_compose_runs_the_connector_against_the_function_services() -> None:
    compose_file = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    connector = compose_file["services"]["connector"]
    template = connector["environment"]["FUNCTION_URL_TEMPLATE"]
    assert template.format(name="ocr", port=0) == "http://ocr:8080/"
    assert connector["build"]["dockerfile"] == "infra/connector/Dockerfile"
    assert (REPO / connector["build"]["dockerfile"]).is_file()
    for name in (fn.name for fn in functions().values() if fn.topics):
        assert compose_file["services"][name]["depends_on"]["connector"] == {
            "condition": "service_started"}


def test_compose_secrets_are_the_readable_copies() -> None:
    compose_file = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    for name, secret in compose_file["secrets"].items():
        assert secret["file"] == f"../../.local/compose-secrets/{name}"


def test_each_function_serves_its_metrics_where_its_annotations_say() -> None:
    for name, fn in functions().items():
        assert fn.annotations["prometheus.io.scrape"] == "true", name
        assert fn.annotations["prometheus.io.port"] == fn.environment["METRICS_PORT"], name
        # Not the watchdog's own metrics port, nor the function's public one.
        assert fn.environment["METRICS_PORT"] not in ("8080", "8081"), name


def test_every_function_asks_its_own_readiness_through_the_watchdog() -> None:
    for name, fn in functions().items():
        assert fn.environment["ready_path"] == "/_/ready", name
    for service in documents(REPO / "infra/knative/services.yaml"):
        (container,) = service["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/_/ready"
