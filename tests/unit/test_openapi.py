"""OpenAPI documents come from the routes the handlers declare."""

import types
from pathlib import Path

from openapi_spec_validator import validate

from scanline.bootstrap import Container
from scanline.runtime import Routes
from scanline.runtime.app import create_app
from scanline.runtime.openapi import document, function_document
from scanline.settings import Settings
from scanline.validation import strict_object

BODY = strict_object({"email": {"type": "string"}}, ["email"])


def sample_routes() -> Routes:
    routes = Routes()

    @routes.http("/", "POST", body={"application/json": BODY},
                 responses={202: {"type": "object"}})
    def create(body: object) -> None:
        """Create a thing."""

    @routes.http("/<uuid:job_id>", "GET", query={"wait": {"type": "integer"}}, auth=True)
    def read(caller: object, job_id: str) -> None: ...

    return routes


def test_document_is_valid_openapi_3_1_with_every_route() -> None:
    spec = document([("things", sample_routes())], server="http://127.0.0.1:8080")
    validate(spec)
    create = spec["paths"]["/function/things"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == BODY
    assert create["summary"] == "Create a thing."
    assert set(create["responses"]) == {"202", "default"}
    read = spec["paths"]["/function/things/{job_id}"]["get"]
    assert [p["name"] for p in read["parameters"]] == ["job_id", "wait"]
    assert read["security"] == [{"bearer": []}]


def test_each_function_serves_its_own_document(tmp_path: Path) -> None:
    handler = types.ModuleType("handler")
    handler.routes = sample_routes()  # type: ignore[attr-defined]
    settings = Settings.from_env({"FUNCTION_NAME": "things", "SECRETS_DIR": str(tmp_path),
                                  "PUBLIC_URL": "http://gw"})
    served = create_app(handler, Container(settings)).test_client().get("/openapi.json").json
    assert served == function_document("things", handler.routes, "http://gw")  # type: ignore[attr-defined]
    assert served["servers"] == [{"url": "http://gw/function/things"}]
    assert set(served["paths"]) == {"/", "/{job_id}"}
