"""JSON text from outside, parsed with bounds.

Python's ``json.loads`` accepts what no Scanline payload ever needs and fails badly on it:
a few thousand nested brackets raise ``RecursionError``, an integer of more than 4,300
digits raises ``ValueError`` (the interpreter's limit on int/str conversion), ``NaN`` and
``Infinity`` are accepted although JSON has no such values. Each of those is a 400 here,
before any schema or handler sees the document, in request bodies and inside events alike.

The bounds are far above what any payload of ours uses (the deepest is three levels) and
far below what would cost anything: integers stay within IEEE 754's exact range (so every
other JSON implementation reads the same number, and a signature over the canonical form
stays verifiable), nesting stays shallow enough for recursive validators.
"""

from __future__ import annotations

import json
from typing import Any

from scanline.errors import BadRequest

MAX_DEPTH = 32
# RFC 8785 (and I-JSON, RFC 7493) interoperable integers: |n| <= 2**53 - 1.
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER)) + 1  # a sign


def _integer(text: str) -> int:
    if len(text) > _MAX_INTEGER_DIGITS or abs(value := int(text)) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer outside ±{MAX_SAFE_INTEGER}")
    return value


def _number(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _depth(document: Any) -> int:
    """Nesting depth, counted without recursion (the document may be hostile)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are unique: with a name twice, which value counts differs
    between parsers (RFC 8259 §4), so neither is guessed."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        twice = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
        raise ValueError(f"names given more than once: {', '.join(twice)[:200]}")
    return document


def loads(text: bytes | str, *, what: str = "request body") -> Any:
    """The JSON document in ``text``, or ``BadRequest`` saying what is wrong with it."""
    try:
        document = json.loads(text, parse_int=_integer, parse_float=_number,
                              parse_constant=_constant, object_pairs_hook=_object)
    except RecursionError:
        raise BadRequest(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    if _depth(document) > MAX_DEPTH:
        raise BadRequest(f"{what} is nested more than {MAX_DEPTH} levels deep")
    return document
