"""docs/openapi.json is the code's own description of the HTTP functions: regenerated, it
is unchanged; it is valid OpenAPI 3.1; every route the handlers dispatch is in it and
nothing else; each request schema in it is the object the handler validates with; and
each function serves the same operations itself through the gateway."""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from infra import openapi
from infra.local.environment import function_environment
from infra.local.paths import REPO
from scanline.runtime import openapi as runtime_openapi
from tests.support.stack import Stack

HANDLERS: dict[str, ModuleType] = openapi.http_functions()
COMMITTED: dict[str, Any] = json.loads((REPO / openapi.DOCUMENT).read_text())


def test_committed_document_is_what_the_code_generates() -> None:
    assert (REPO / openapi.DOCUMENT).read_text() == openapi.render(openapi.combined()), \
        "run `make manifests` and commit docs/openapi.json"


def test_document_is_valid_openapi_3_1() -> None:
    validate(COMMITTED)
    assert COMMITTED["openapi"].startswith("3.1")


def test_every_http_function_of_stack_yml_is_documented() -> None:
    # issue-otp has operations and an event handler; ocr and send-email only the latter.
    assert set(HANDLERS) == {"register", "issue-otp", "verify-otp", "token", "ocr-jobs",
                             "housekeeping", "console"}


def _documented(rule: str, function: str) -> str:
    return (f"/function/{function}" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)).rstrip("/")


def test_every_werkzeug_rule_is_an_operation_and_nothing_else() -> None:
    dispatched = {(_documented(rule.rule, name), method.lower())
                  for name, module in HANDLERS.items() for rule in module.routes.rules()
                  for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    documented = {(path, method) for path, item in COMMITTED["paths"].items()
                  for method in item}
    assert dispatched == documented


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_request_schemas_are_the_handlers_validation_schemas(function: str) -> None:
    module = HANDLERS[function]
    constants = {id(value) for value in vars(module).values() if isinstance(value, dict)}
    for op in module.routes.operations:
        path = _documented(op.rule, function)
        for method in op.methods:
            body = COMMITTED["paths"][path][method.lower()].get("requestBody")
            if op.body is None:
                assert body is None
                continue
            for media, schema in op.body.items():
                # The very object the runtime validates the body with, not a copy of it...
                assert id(schema) in constants, f"{path} {media}: not a module constant"
                # ...and the document carries it unchanged.
                assert body["content"][media]["schema"] == json.loads(json.dumps(schema))


def test_token_documents_both_grants_it_validates() -> None:
    token = HANDLERS["token"]
    grants = [branch["then"] for branch in token.TOKEN_REQUEST["allOf"]]
    assert grants[0] is token.PASSWORD_GRANT and grants[1] is token.REFRESH_GRANT
    content = COMMITTED["paths"]["/function/token"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_each_function_serves_its_part_of_the_document(stack: Stack, function: str) -> None:
    served = requests.get(f"{stack.gateway}/function/{function}/openapi.json", timeout=10)
    assert served.status_code == 200
    public_url = function_environment(function)["PUBLIC_URL"]
    expected = runtime_openapi.function_document(function, HANDLERS[function].routes,
                                                 public_url)
    assert served.json() == json.loads(json.dumps(expected))
    prefix = f"/function/{function}"
    combined = {path.removeprefix(prefix) or "/": item
                for path, item in COMMITTED["paths"].items()
                if path == prefix or path.startswith(prefix + "/")}
    assert served.json()["paths"] == combined
