"""The combined OpenAPI 3.1 document of every HTTP function in ``stack.yml``.

A function is an HTTP function when its handler's ``routes`` declare HTTP operations
(issue-otp has both operations and an event handler; send-email and ocr only the latter).
The document is built by ``scanline.runtime.openapi`` from the routes the handlers
declare, the same declarations that validate their requests; ``python -m infra.generate``
writes it to ``docs/openapi.json`` and a test fails when the committed copy differs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.stackfile import Stack, load
from scanline.runtime import openapi
from scanline.runtime.routing import Routes

DOCUMENT = Path("docs/openapi.json")


def load_handler(stack: Stack, name: str) -> ModuleType:
    """Import a function's handler.py as its own module (nothing connects at import)."""
    path = stack.root / stack.functions[name].handler / "handler.py"
    spec = importlib.util.spec_from_file_location(f"handler_{name.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_functions(stack: Stack | None = None) -> dict[str, ModuleType]:
    """Name → handler module of each function the gateway serves over HTTP, in stack order."""
    stack = stack or load(environ={})
    found = {}
    for name in stack.functions:
        module = load_handler(stack, name)
        routes = getattr(module, "routes", None)
        if not isinstance(routes, Routes):
            raise ValueError(f"{name}'s handler declares no routes")
        if routes.operations:
            found[name] = module
    return found


def combined(stack: Stack | None = None) -> dict[str, Any]:
    """``stack.gateway`` (``provider.gateway``) is the document's server."""
    stack = stack or load(environ={})
    functions = [(name, module.routes) for name, module in http_functions(stack).items()]
    return openapi.document(functions, server=stack.gateway)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
