"""housekeeping: delete what has expired, on a schedule.

OpenFaaS' cron-connector calls it (stack.yml: ``topic: cron-function`` and ``schedule``);
the local stack's scheduler does the same. Every rule is in
``scanline.adapters.housekeeping``. A run is idempotent and bounded, and runs no more
than once a minute however often it is called (it is reachable through the gateway like
every OpenFaaS function), so calling it costs a caller nothing it could abuse.
"""

from datetime import timedelta

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain.rate_limits import HOUSEKEEPING_RUNS
from scanline.runtime import Response, Routes
from scanline.settings import Settings
from scanline.validation import strict_object

REPORT = strict_object(
    {"status": {"enum": ["done", "skipped"]},
     "deleted": {"type": "object", "additionalProperties": {"type": "integer"}}},
    required=["status"])

routes = Routes()


@routes.http("/", "POST", summary="Delete expired registrations, codes, sessions, counters, "
                                  "event ids and audit rows", responses={200: REPORT})
def prune(uow: UnitOfWork, clock: Clock, settings: Settings) -> Response:
    now = clock.now()
    with uow:
        if uow.limits.hit(HOUSEKEEPING_RUNS, "run", now) is not None:
            return Response({"status": "skipped"})
        deleted = uow.housekeeping.prune(
            now, replay_window=timedelta(seconds=settings.event_max_age),
            audit_retention=timedelta(days=settings.audit_retention_days))
    return Response({"status": "done", "deleted": deleted})
