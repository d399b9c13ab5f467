"""The local stand-in for OpenFaaS' cron-connector: invoke scheduled functions on time.

A function annotated ``topic: cron-function`` with a ``schedule`` (a cron expression, as
the cron-connector reads it) is POSTed to on every tick of its schedule, straight at its
own port as the connector does through the gateway. A failed call is logged and the next
tick tries again; the functions are idempotent (housekeeping is).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime

import requests
from cronsim import CronSim

from infra.local import paths
from infra.local.stackfile import Function, load
from scanline.logs import configure as configure_logging

log = logging.getLogger("scheduler")


def run(function: Function, stop: threading.Event) -> None:
    assert function.schedule is not None
    ticks = CronSim(function.schedule, datetime.now().astimezone())
    url = f"http://{paths.HOST}:{function.port}/"
    timeout = function.timeout("exec_timeout") + 5
    for tick in ticks:
        if stop.wait(max(0.0, (tick - datetime.now().astimezone()).total_seconds())):
            return
        try:
            response = requests.post(url, timeout=timeout)
            log.info("invoked", extra={"target": function.name, "status": response.status_code})
        except requests.RequestException as exc:
            log.warning("invocation failed", extra={"target": function.name,
                                                    "error": type(exc).__name__})


def main() -> None:
    configure_logging("scheduler")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    scheduled = [f for f in load().functions.values() if f.schedule]
    threads = [threading.Thread(target=run, args=(f, stop), name=f"cron-{f.name}", daemon=True)
               for f in scheduled]
    for thread in threads:
        thread.start()
    log.info("scheduling", extra={"functions": {f.name: f.schedule for f in scheduled}})
    stop.wait()


if __name__ == "__main__":
    main()
