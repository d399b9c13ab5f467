"""A new function: replace this with the operation's business logic."""

from scanline.events import Event
from scanline.runtime import Context, Response

# Adapters /_/ready checks before traffic is sent: any of "db", "bus", "store", "mail".
DEPENDS_ON: tuple[str, ...] = ()


def handle(event: Event, context: Context) -> Response:
    return Response({"received": event.type, "id": event.id})
