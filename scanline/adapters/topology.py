"""Names of the broker objects, spelled once for publishers, triggers and tools."""

from __future__ import annotations

EXCHANGE = "scanline.events"
DEAD_LETTER_EXCHANGE = "scanline.dead-letter"
DELIVERY_LIMIT = 10


def queue_name(function: str) -> str:
    return f"scanline.{function}"


def dead_letter_queue_of(queue: str) -> str:
    return f"{queue}.dlq"


def dead_letter_queue(function: str) -> str:
    return dead_letter_queue_of(queue_name(function))


def queue_arguments(function: str, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, object]:
    """A quorum queue that dead-letters a message after ``delivery_limit`` redeliveries."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(function),
    }
