"""A plain call's body, query and headers, read and checked against what its operation declares.

The body is read for the media types the operation lists and no other (415 names the
ones it takes); JSON with ``scanline.jsontext``'s bounds, forms with werkzeug's limits,
multipart as a stream whose file parts stay spooled files. Query values are strings on
the wire: each is converted to the type its schema names before it is checked, and
parameters the operation does not declare are ignored (caches and proxies add some).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from flask import Request

from scanline import jsontext
from scanline.errors import BadRequest, UnsupportedMediaType
from scanline.runtime.routing import Operation
from scanline.validation import compiled

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
_INTEGER = re.compile(r"-?[0-9]{1,15}")


def file_fields(schema: Mapping[str, Any]) -> set[str]:
    """The parts of a multipart schema that are files (``contentMediaType`` given)."""
    return {name for name, prop in schema.get("properties", {}).items()
            if isinstance(prop, Mapping) and "contentMediaType" in prop}


def body(op: Operation, request: Request) -> Any:
    """The operation's request body, checked; None when it takes none."""
    if op.body is None:
        return None
    media = request.mimetype or (JSON if JSON in op.body else "")
    schema = op.body.get(media)
    if schema is None:
        raise UnsupportedMediaType(
            f"{request.method} {request.path} takes {' or '.join(sorted(op.body))}"
            + (f", not {media}" if media else ""))
    if media == MULTIPART:
        _once(request.form, request.files)
        files = file_fields(schema)
        # A file field is present only as a file part (a text field of that name is not
        # it); its content is the view's to judge. A file part of any other name is an
        # unknown part, as the schema judges it.
        parts: dict[str, Any] = {k: v for k, v in request.form.to_dict().items()
                                 if k not in files}
        parts.update({name: "" for name in request.files})
        compiled(schema).check(parts)
        return {k: v for k, v in request.form.to_dict().items() if k not in files}
    if media == FORM:
        _once(request.form)
        return compiled(schema).check(request.form.to_dict())
    return compiled(schema).check(jsontext.loads(request.get_data(cache=True)))


def _once(*groups: Any) -> None:
    """Each parameter or part at most once, as a field or as a file (RFC 6749 §3.2 for
    forms): no guessing which copy was meant."""
    names = Counter(name for group in groups for name, _ in group.items(multi=True))
    repeated = sorted(name for name, count in names.items() if count > 1)
    if repeated:
        raise BadRequest(f"parameters given more than once: {', '.join(repeated)}")


def _convert(value: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer" and _INTEGER.fullmatch(value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def headers(op: Operation, sent: Mapping[str, str]) -> dict[str, Any]:
    """The declared headers that were sent, by their declared name (HTTP header names are
    case-insensitive; ``sent`` is werkzeug's headers, which looks them up so)."""
    values = {name: sent[name] for name in op.headers if sent.get(name) is not None}
    return compiled(op.headers_schema).check(values)


def query(op: Operation, args: Mapping[str, str]) -> dict[str, Any]:
    values = {name: _convert(args[name], schema)
              for name, schema in op.query.items() if name in args}
    return compiled(op.query_schema).check(values)
