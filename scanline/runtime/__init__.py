"""What a handler sees of the platform: ``Context`` in, ``Response`` out."""

from scanline.runtime.context import Context, Response
from scanline.runtime.routing import Routes

__all__ = ["Context", "Response", "Routes"]
