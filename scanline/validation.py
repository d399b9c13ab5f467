"""JSON Schema (draft 2020-12) checks of request bodies, queries and event data.

Schemas are declared once, next to the route or event type that uses them, and compiled
once per process (``compiled``) when the route or type is declared, so a broken schema
fails at start-up and a request pays only for the check. A missing, unknown or mistyped
field is a 422 listing each fault. Text that no schema can exclude but PostgreSQL cannot
store (a NUL character, a lone UTF-16 surrogate from a ``\\ud800`` escape) is refused too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from scanline.errors import InvalidInput, ScanlineError

# Longest value quoted back in full: an answer (and its logs) need not carry kilobytes of
# what was sent, once per rule it breaks.
QUOTED = 40


def _message(error: ValidationError) -> str:
    quoted = repr(error.instance)
    if len(quoted) <= QUOTED or quoted not in error.message:
        return str(error.message)
    size = f" ({len(error.instance)} long)" if hasattr(error.instance, "__len__") else ""
    return str(error.message).replace(quoted, quoted[:QUOTED] + "…" + size)


class Validator:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self.schema = schema
        self._validator = Draft202012Validator(schema, format_checker=FormatChecker())

    def errors(self, data: Any) -> list[dict[str, str]]:
        found = [{"pointer": "/" + "/".join(str(p) for p in e.path), "detail": _message(e)}
                 for e in sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))]
        return found + list(unstorable(data))

    def check(self, data: Any, error: type[ScanlineError] = InvalidInput,
              title: str = "the request does not match the expected fields") -> Any:
        """``data`` if it matches; otherwise ``error`` with every fault listed."""
        faults = self.errors(data)
        if faults:
            raise error(title, errors=faults)
        return data


_compiled: dict[int, tuple[Mapping[str, Any], Validator]] = {}


def compiled(schema: Mapping[str, Any]) -> Validator:
    """The validator of ``schema``, built on first use (schemas are module constants)."""
    entry = _compiled.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, Validator(schema))
        _compiled[id(schema)] = entry
    return entry[1]


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


def validate(data: Any, schema: Mapping[str, Any]) -> Any:
    """Return ``data`` if it matches ``schema``; otherwise raise ``InvalidInput``."""
    return compiled(schema).check(data)


def strict_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A schema for a JSON object that rejects unknown fields."""
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}
