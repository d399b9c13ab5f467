"""Entry point of every Scanline function (python3-flask-cloudevents template).

The watchdog (of-watchdog, mode=http) forwards each request to this server. faas-cli
places the handler and the shared ``scanline`` package (``configuration.copy``) under
``function/``; that folder goes on ``sys.path`` so both import as top-level modules.
The app and the container of adapters are built once per process; no adapter connects
to its server before the first request that needs it.
"""

import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent / "function"))

import handler
from waitress import serve

from scanline import logs, tracing
from scanline.bootstrap import Container
from scanline.runtime import metrics
from scanline.runtime.app import create_app

container = Container.from_env()
logs.configure(container.settings.function_name, container.settings.log_level)
tracing.configure(container.settings.function_name, container.settings.otlp_endpoint)
app = create_app(handler, container)


def _stop(signum: int, _frame: object) -> None:
    container.close()
    tracing.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    # Scraped from the pod on its own port, never through the gateway.
    metrics.serve(container.settings.metrics_port)
    limit = container.settings.max_request_bytes
    # The watchdog's upstream_url says where it forwards to, so it is also where to listen
    # (PORT belongs to the watchdog: Knative sets it to the container port).
    upstream = urlsplit(os.environ.get("upstream_url", "http://127.0.0.1:5000"))  # noqa: SIM112
    serve(
        app,
        host=upstream.hostname or "127.0.0.1",
        port=upstream.port or 5000,
        threads=int(os.environ.get("THREADS", "8")),
        # waitress buffers bodies before the app sees them: cap that at twice the
        # function's limit (the app answers 413 with a problem document below it).
        max_request_body_size=2 * limit + 1024 * 1024,
        # X-Forwarded-For reaches the app, which decides whom to believe
        # (scanline.runtime.client_address); waitress would otherwise drop it.
        clear_untrusted_proxy_headers=False,
        ident="scanline",
    )
