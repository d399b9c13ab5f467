"""``Idempotency-Key``: a create sent twice makes one job.

A client that retries a create after a timeout or a dropped connection cannot know whether
the first one arrived. With the same key, the retry gets the first answer (the same job,
status and document) for as long as the key is kept (``JobPolicy.idempotency_window``),
whatever happened since. A key names one request: the same key with a different request
is refused (409), never a second job or another request's answer. Keys are the user's
own: two users' equal keys are two keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HEADER = "Idempotency-Key"
# Visible ASCII, as the IETF draft's examples and Stripe's keys are; bounded.
KEY = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$",
       "description": "Any string of your own, unique per request you mean (a UUID): a "
                      "retry with the same key returns the first answer."}


def fingerprint(**request: Any) -> str:
    """What the request asked for, as a digest: the kind of create and its every input
    (an uploaded document by its SHA-256)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
