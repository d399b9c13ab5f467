"""A new function: declare its operations on ``routes`` and write their business logic.

Views take what they use by parameter name (``body``, ``query``, ``caller`` on ``auth=True``
operations, ``uow``, ``clock``, ...: see scanline.runtime.injection); the runtime checks the
declared schemas, tokens and event signatures before a view runs.
"""

from typing import Any

from scanline.runtime import Response, Routes

GREETING = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}},
            "additionalProperties": False}

routes = Routes()


@routes.http("/", "POST", body={"application/json": GREETING})
def hello(body: dict[str, Any]) -> Response:
    return Response({"hello": body.get("name", "world")})
