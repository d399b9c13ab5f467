"""Every deploy file validates against the schema of the tool or API that will read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.generate.common import REPO
from infra.local.stackfile import envsubst
from tests.deploy.manifests import crd_schemas, documents, json_schema

KUBERNETES_VERSION = "1.30"
MANIFESTS = [
    "infra/knative/services.yaml",
    "infra/knative/eventing.yaml",
    "infra/keda/ocr-scaledobject.yaml",
    "infra/openfaas/platform.yaml",
    "infra/openfaas/connector.yaml",
    "infra/openfaas/migrations-job.yaml",
]  # functions.yaml (openfaas.com/v1) is checked by kubeconform (test_real_tools.py)


def _objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in MANIFESTS for doc in documents(REPO / path)]


def _validate_object(doc: dict[str, Any]) -> None:
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("name", "doc"), _objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_manifest_object_is_valid(name: str, doc: dict[str, Any]) -> None:
    _validate_object(doc)


def test_every_custom_resource_has_its_crd_schema() -> None:
    core_groups = ("v1", "apps/v1", "batch/v1")
    custom = {(d["apiVersion"], d["kind"]) for _, d in _objects()
              if d["apiVersion"] not in core_groups}
    assert custom <= set(crd_schemas()), custom - set(crd_schemas())
    assert {k for _, k in custom} >= {"Service", "Broker", "Trigger", "SinkBinding",
                                      "RabbitmqBrokerConfig", "ScaledObject",
                                      "TriggerAuthentication"}


@pytest.mark.parametrize("mutation", [
    # A misspelt field, a wrong type and a missing required field must all be caught.
    lambda d: d["spec"]["template"]["spec"].update(containerConcurency=1),
    lambda d: d["spec"]["template"]["spec"].update(timeoutSeconds="35"),
    lambda d: d["spec"]["template"]["spec"].pop("containers"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
        memory="lots"),
])
def test_crd_schemas_reject_broken_services(mutation) -> None:
    doc = documents(REPO / "infra/knative/services.yaml")[0]
    mutation(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate_object(doc)


def test_crd_schemas_reject_a_trigger_without_known_delivery_fields() -> None:
    trigger = next(d for d in documents(REPO / "infra/knative/eventing.yaml")
                   if d["kind"] == "Trigger")
    trigger["spec"]["delivery"]["retries"] = 3
    with pytest.raises(jsonschema.ValidationError):
        _validate_object(trigger)


def test_core_objects_are_checked_strictly() -> None:
    deployment = next(d for d in documents(REPO / "infra/openfaas/platform.yaml")
                      if d["kind"] == "Deployment")
    deployment["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_object(deployment)


def _stack_document(path: Path) -> Any:
    return yaml.safe_load(envsubst(path.read_text(), {}))


def test_stack_yml_follows_faas_cli_schema() -> None:
    jsonschema.Draft202012Validator(json_schema("stack.schema.json")).validate(
        _stack_document(REPO / "stack.yml"))


def test_stack_schema_rejects_unknown_function_fields() -> None:
    document = _stack_document(REPO / "stack.yml")
    next(iter(document["functions"].values()))["enviroment"] = {"A": "b"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(json_schema("stack.schema.json")).validate(document)


def test_compose_file_follows_compose_spec() -> None:
    compose = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    jsonschema.Draft7Validator(json_schema("compose-spec.json")).validate(compose)


def test_compose_spec_rejects_unknown_service_fields() -> None:
    compose = yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())
    compose["services"]["postgres"]["enviroment"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json_schema("compose-spec.json")).validate(compose)
