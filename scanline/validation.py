"""Request and event payloads checked against JSON Schema (draft 2020-12).

Every schema a handler uses is declared next to it and enforced here, so a missing,
unknown or mistyped field is a 422 problem listing each fault, never a crash later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from scanline.errors import InvalidInput

_validators: dict[int, Draft202012Validator] = {}


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    key = id(schema)
    if key not in _validators:
        Draft202012Validator.check_schema(schema)
        _validators[key] = Draft202012Validator(schema, format_checker=FormatChecker())
    return _validators[key]


def validate(data: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` if it matches ``schema``; otherwise raise ``InvalidInput``."""
    errors = sorted(_validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        raise InvalidInput(
            "the request does not match the expected fields",
            errors=[{"pointer": "/" + "/".join(str(p) for p in e.path), "detail": e.message}
                    for e in errors])
    return data


def strict_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A schema for a JSON object that rejects unknown fields."""
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}
