"""console: Scanline's web console, served like any other function.

A page, a script and a style sheet, with no build step: sign up, enter the mailed code,
log in, drop an image or a PDF, watch the job, read its text with every word's box drawn
over the page (its confidence on hover), download the text, hOCR or searchable PDF, list
and delete jobs, log out. The page talks to the other functions through the same gateway
(same origin), and keeps its tokens in memory only: never in storage a script could read
later. Every answer carries a strict Content-Security-Policy (scripts, styles and
connections from this origin alone; no inline code), so an injected string in a job's
text can never run.
"""

from functools import cache
from pathlib import Path

from scanline.errors import NotFound
from scanline.runtime import Response, Routes

STATIC = Path(__file__).parent / "static"
ASSETS = {"index.html": "text/html; charset=utf-8",
          "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8",
          "icon.svg": "image/svg+xml"}
# blob: images are the user's own file, shown under its word boxes.
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

routes = Routes()


@cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _served(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no asset {name!r}")
    return Response(_asset(name), content_type=ASSETS[name], headers=SECURITY)


@routes.http("/", "GET", summary="The console's page")
def page() -> Response:
    return _served("index.html")


@routes.http("/<asset>", "GET", summary="The console's script, style sheet and icon")
def asset(asset: str) -> Response:
    return _served(asset)
