"""A function for the watchdog tests: slow on demand, and ready only with its database.

``GET /sleep?ms=N`` holds a request for N milliseconds (the watchdog's ``exec_timeout`` acts
on it); ``GET /hold?entered=A&release=B`` writes file A once it is running and returns when
file B exists (so a test knows, without timing, that a call is in flight); ``GET /users``
reads through a unit of work, which is what makes ``/_/ready`` check the database.
"""

from __future__ import annotations

import time
from pathlib import Path

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.runtime import Routes

routes = Routes()


@routes.http("/sleep", "GET", auth=False,
             query={"ms": {"type": "integer", "minimum": 0, "maximum": 60_000}})
def sleep(query: dict[str, int]) -> dict[str, int]:
    time.sleep(query.get("ms", 0) / 1000)
    return {"slept_ms": query.get("ms", 0)}


@routes.http("/users", "GET", auth=False)
def users(uow: UnitOfWork) -> dict[str, bool]:
    with uow:
        return {"database": True}


@routes.http("/hold", "GET", auth=False,
             query={"entered": {"type": "string"}, "release": {"type": "string"}})
def hold(query: dict[str, str]) -> dict[str, bool]:
    Path(query["entered"]).touch()
    release = Path(query["release"])
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"released": release.exists()}
