"""What a handler module uses of the platform: ``Routes`` to declare, ``Response`` and
``Call`` for the few views that need more than a JSON body."""

from scanline.runtime.context import Call, Response
from scanline.runtime.routing import Routes

__all__ = ["Call", "Response", "Routes"]
