"""The console's page, script and style sheet, as the console function serves them: a
strict Content-Security-Policy on every answer, and a page that needs nothing it forbids
(no inline script, handler or style; no token in storage a later script could read)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from infra.local.paths import REPO
from infra.local.stackfile import load
from infra.openapi import load_handler
from scanline.bootstrap import Container
from scanline.runtime.app import create_app
from scanline.settings import Settings

STATIC = REPO / "functions/console/static"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    container = Container(Settings.from_env({"FUNCTION_NAME": "console",
                                             "SECRETS_DIR": str(tmp_path)}))
    yield create_app(load_handler(load(environ={}), "console"), container).test_client()
    container.close()


def policy(answer: object) -> dict[str, str]:
    header = answer.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    return {d.split()[0]: " ".join(d.split()[1:]) for d in header.split("; ")}


def test_page_script_and_style_are_served_with_a_strict_policy(client: FlaskClient) -> None:
    for path, media_type in [("/", "text/html"), ("/app.js", "text/javascript"),
                             ("/app.css", "text/css"), ("/icon.svg", "image/svg+xml")]:
        answer = client.get(path)
        assert answer.status_code == 200 and answer.mimetype == media_type, path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        directives = policy(answer)
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == directives["style-src"] == "'self'"
        assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert client.get("/handler.py").status_code == 404
    assert client.get("/../handler.py").status_code == 404
    assert client.get("/_/ready").status_code == 200  # it depends on nothing


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.inline += [f"{tag} {n}" for n in names if n.startswith("on") or n == "style"]
        if tag == "script":
            if not names.get("src"):
                self.inline.append("inline <script>")
            self.scripts.append(names.get("src") or "")


def test_the_page_needs_nothing_its_policy_forbids() -> None:
    page = _Page()
    page.feed((STATIC / "index.html").read_text())
    assert page.inline == [] and page.scripts == ["/function/console/app.js"]
    script = (STATIC / "app.js").read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "localStorage", "sessionStorage", "document.cookie", "eval(",
                      "new Function"):
        assert forbidden not in script, forbidden
    # Every call goes to this origin's gateway paths (connect-src 'self').
    assert set(re.findall(r'fetch\((\w+)', script)) == {"API"}
