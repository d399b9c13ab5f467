"""The CloudEvents envelope as Scanline uses it: one way in and one way out.

The event types and their data live in ``scanline.payloads``; signing in
``scanline.signing``. ``parse_structured``/``parse_binary`` check the required attributes
themselves before handing the message to the ``cloudevents`` SDK, because the SDK invents a
random ``id`` when it is missing (which would defeat de-duplication) and raises assorted
plain exceptions on bad input; every such failure becomes ``BadRequest``. JSON, in the
envelope and in the data, is read with ``scanline.jsontext``'s bounds.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from dateutil.parser import isoparse

from scanline import jsontext
from scanline.errors import BadRequest
from scanline.validation import unstorable

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
REQUIRED = ("id", "source", "type", "specversion")
MAX_ATTRIBUTE_NAME = 20
DATA = ("data", "data_base64")  # members of a structured event that are not attributes


class _BoundedJSONFormat(JSONFormat):
    """The SDK's JSON format, reading JSON data with bounds, and refusing (instead of
    silently passing on as a string) data that claims to be JSON and is not."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> Any:
        if not body:
            return None
        if re.match(JSONFormat.JSON_CONTENT_TYPE_PATTERN,
                    datacontenttype or self.DEFAULT_CONTENT_TYPE):
            return jsontext.loads(body, what="CloudEvent data")
        return super().read_data(body, datacontenttype)


_FORMAT = _BoundedJSONFormat()


@dataclass(frozen=True)
class Event:
    id: str
    source: str
    type: str
    data: Any = None
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = "application/json"
    extensions: Mapping[str, Any] = field(default_factory=dict)
    specversion: str = "1.0"

    @property
    def traceparent(self) -> str | None:
        value = self.extensions.get("traceparent")
        return value if isinstance(value, str) else None

    def to_structured(self) -> bytes:
        """The JSON body used on the broker and for structured HTTP delivery."""
        return _FORMAT.write(self.to_cloudevent())

    def to_binary(self) -> tuple[dict[str, str], bytes]:
        message = ce_http.to_binary(self.to_cloudevent(), _FORMAT)
        return dict(message.headers), message.body

    def to_cloudevent(self) -> CloudEvent:
        attributes: dict[str, Any] = {
            "id": self.id, "source": self.source, "type": self.type,
            "specversion": self.specversion, **dict(self.extensions),
        }
        for name in ("subject", "time", "datacontenttype"):
            if getattr(self, name) is not None:
                attributes[name] = getattr(self, name)
        return CloudEvent(attributes, self.data)


def new_event(type_: str, data: Any, *, source: str, time: datetime | None = None,
              subject: str | None = None, traceparent: str | None = None) -> Event:
    """A fresh event with a unique id, the time (now by default) and a child trace context."""
    return Event(
        id=str(uuid.uuid4()), source=source, type=type_, data=data, subject=subject,
        time=time or datetime.now(UTC),
        extensions={"traceparent": child_traceparent(traceparent)},
    )


def child_traceparent(parent: str | None) -> str:
    """W3C trace context: keep the trace id of ``parent`` (or start one), new span id."""
    parts = (parent or "").split("-")
    trace_id = parts[1] if len(parts) == 4 and len(parts[1]) == 32 else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _from_sdk(event: Any) -> Event:
    attrs = dict(event.get_attributes())
    core = {k: attrs.pop(k) for k in REQUIRED}
    return Event(
        id=core["id"], source=core["source"], type=core["type"], specversion=core["specversion"],
        data=event.get_data(), subject=attrs.pop("subject", None), time=attrs.pop("time", None),
        datacontenttype=attrs.pop("datacontenttype", None),
        extensions={k: v for k, v in attrs.items() if k != "dataschema"},
    )


def _check_required(attributes: Mapping[str, Any]) -> None:
    missing = [name for name in REQUIRED
               if not isinstance(attributes.get(name), str) or not attributes.get(name)]
    if missing:
        raise BadRequest(f"CloudEvent is missing required attribute(s): {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise BadRequest(f"unsupported CloudEvents specversion {attributes['specversion']!r}")
    # The spec's SHOULD; the SDK checks only the characters. No producer of ours, Knative's
    # or the connectors' uses a longer name, so a longer one is a malformed event.
    long = [name[:40] for name in attributes if len(name) > MAX_ATTRIBUTE_NAME]
    if long:
        raise BadRequest(f"CloudEvent attribute names are at most {MAX_ATTRIBUTE_NAME} "
                         f"characters: {', '.join(long)}")
    # The id is stored (de-duplication) and every attribute is logged or forwarded.
    text = next(unstorable({k: v for k, v in attributes.items() if k not in DATA}), None)
    if text:
        raise BadRequest(f"CloudEvent attribute {text['pointer'][1:]} {text['detail']}")


def parse_structured(body: bytes) -> Event:
    document = jsontext.loads(body, what="structured CloudEvent")
    if not isinstance(document, dict):
        raise BadRequest("structured CloudEvent must be a JSON object")
    _check_required(document)
    try:
        attributes = {k: v for k, v in document.items() if k not in DATA}
        if "time" in attributes:
            attributes["time"] = isoparse(attributes["time"])
        data = document.get("data")
        if data is None and isinstance(document.get("data_base64"), str):
            data = base64.b64decode(document["data_base64"], validate=True)
        return _from_sdk(CloudEvent(attributes, data))
    except Exception as exc:  # the SDK raises ValueError/TypeError/AttributeError alike
        raise BadRequest(f"invalid CloudEvent: {exc}") from None


def parse_binary(headers: Mapping[str, str], body: bytes) -> Event:
    ce = {k.lower()[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
    _check_required(ce)
    lowered = {k.lower(): v for k, v in headers.items()}
    message_headers = {f"ce-{k}": v for k, v in ce.items()}
    if "content-type" in lowered:
        message_headers["content-type"] = lowered["content-type"]
    try:
        return _from_sdk(ce_http.from_binary(
            ce_http.HTTPMessage(headers=message_headers, body=body), _FORMAT, CloudEvent))
    except BadRequest:
        raise
    except Exception as exc:  # bad time, bad extension name, data not matching its type
        raise BadRequest(f"invalid CloudEvent: {exc}") from None


def looks_structured(content_type: str, body: bytes) -> bool:
    """Connectors may send a structured event as text/plain: recognise it by its shape
    (a JSON object with a ``specversion``), without parsing anything unbounded."""
    media = content_type.split(";")[0].strip().lower()
    if media == STRUCTURED_CONTENT_TYPE:
        return True
    if media not in ("text/plain", "application/json", ""):
        return False
    if body.lstrip()[:1] != b"{":
        return False
    try:
        document = jsontext.loads(body)
    except BadRequest:
        return False
    return isinstance(document, dict) and "specversion" in document


def is_binary(headers: Mapping[str, str]) -> bool:
    """Binary mode: the attributes are ``ce-*`` headers."""
    return any(name.lower().startswith("ce-") for name in headers)


def carries_event(headers: Mapping[str, str], content_type: str, body: bytes) -> bool:
    """True when a request is an event delivery (binary ``ce-*`` headers or a structured
    body) rather than a plain call."""
    return is_binary(headers) or (bool(body) and looks_structured(content_type, body))
