"""Request and event payloads checked against JSON Schema (draft 2020-12).

Every schema a handler uses is declared next to it and enforced here, so a missing,
unknown or mistyped field is a 422 problem listing each fault, never a crash later. Text
that no schema can exclude but PostgreSQL cannot store (a NUL character, a lone UTF-16
surrogate from a ``\\ud800`` JSON escape) is refused here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


def unstorable(data: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Strings in ``data`` that are not text PostgreSQL can store (the value is never
    quoted back: it may be a password)."""
    if isinstance(data, str):
        if "\x00" in data:
            yield {"pointer": "/" + "/".join(path), "detail": "contains a NUL character"}
        elif not _encodable(data):
            yield {"pointer": "/" + "/".join(path),
                   "detail": "is not valid Unicode (a lone surrogate)"}
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from unstorable(key, path)
            yield from unstorable(value, (*path, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from unstorable(value, (*path, str(index)))


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate(data: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` if it matches ``schema``; otherwise raise ``InvalidInput``."""
    errors = [{"pointer": "/" + "/".join(str(p) for p in e.path), "detail": e.message}
              for e in sorted(_validator(schema).iter_errors(data), key=lambda e: list(e.path))]
    errors += unstorable(data)
    if errors:
        raise InvalidInput("the request does not match the expected fields", errors=errors)
    return data


def strict_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A schema for a JSON object that rejects unknown fields."""
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}
