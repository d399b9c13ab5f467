"""Load the deploy files and the schemas they are checked against.

CRD schemas are Kubernetes' structural OpenAPI v3: an object without
``x-kubernetes-preserve-unknown-fields`` or ``additionalProperties`` keeps only the fields it
names. ``kubectl apply`` (strict field validation) rejects the others, so the JSON schema
made here sets ``additionalProperties: false`` on such objects.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from infra.generate.common import REPO, load_stack
from infra.local.stackfile import Function

DATA = REPO / "tests" / "data"
CRD_DIR = DATA / "crds"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def functions() -> dict[str, Function]:
    """stack.yml's functions with the defaults (what the committed manifests hold)."""
    return dict(load_stack({}).functions)


def _structural(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out:
        out["properties"] = {k: _structural(v) for k, v in out["properties"].items()}
        if ("additionalProperties" not in out
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(out["additionalProperties"])
    if "items" in out:
        out["items"] = _structural(out["items"])
    if "anyOf" in out and "pattern" in out:
        # A quantity: the pattern applies to the string form only.
        pattern = out.pop("pattern")
        out["anyOf"] = [{"type": "integer"}, {"type": "string", "pattern": pattern}]
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` → JSON schema, from every CRD under tests/data/crds."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _structural(version["schema"]["openAPIV3Schema"])
            schema["properties"].update({"apiVersion": {"const": f"{group}/{version['name']}"},
                                         "kind": {"const": kind},
                                         "metadata": {"$ref": "#/$defs/metadata"}})
            schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
            schema["$defs"] = {"metadata": METADATA}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                 "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def json_schema(name: str) -> dict[str, Any]:
    return json.loads((DATA / "schemas" / name).read_text())
