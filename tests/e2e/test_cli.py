"""The ``scanline`` CLI as a person uses it, against the running stack: the installed
console script, passwords typed at its prompts, the code read from the mail sink as a
person reads their mail, and nothing else (no database, no shortcut).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.ocr_samples import generated, padded_png, word_recall
from scanline_cli.credentials import FILE_NAME
from scanline_cli.uploads import DIRECT_LIMIT
from tests.support.mailbox import Mailbox
from tests.support.stack import Stack

SCANLINE = Path(sys.executable).parent / "scanline"
PASSWORD = "a command line passphrase 13"
SAMPLE = generated()[0]


class Person:
    """One person at a terminal: their own config folder, their own gateway setting."""

    def __init__(self, stack: Stack, home: Path) -> None:
        self.home, self.gateway, self.email = home, stack.gateway, ""
        self.outputs: list[str] = []

    def run(self, *args: str, stdin: str = "", gateway: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SCANLINE_CONFIG_DIR": str(self.home),
               "SCANLINE_GATEWAY": gateway or self.gateway}
        done = subprocess.run([str(SCANLINE), *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=self.home, timeout=300)
        self.outputs += [done.stdout, done.stderr]
        return done

    def ok(self, *args: str, stdin: str = "") -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def credentials(self) -> dict[str, dict[str, str]]:
        return json.loads((self.home / FILE_NAME).read_text())


@pytest.fixture
def person(stack: Stack, tmp_path: Path, mailbox: Mailbox) -> Person:
    """Signed up through the CLI: signup, the mailed code, verify (which logs in)."""
    someone = Person(stack, tmp_path / "home")
    someone.home.mkdir()
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    said = someone.ok("signup", "--email", email, "--name", "Cli User",
                      stdin=f"{PASSWORD}\n{PASSWORD}\n")  # the prompt, then its confirmation
    assert f"A code is on its way to {email}" in said
    mail = mailbox.wait_for(to=email, subject="verification code", timeout=30)
    code = re.search(r"code is (\d{6})", mail.get_content()).group(1)  # type: ignore[union-attr]
    assert someone.ok("verify", code, stdin=f"{PASSWORD}\n").strip() == \
        f"Verified: logged in as {email}."
    someone.email = email
    return someone


def test_a_person_signs_up_logs_in_and_the_tokens_never_show(person: Person,
                                                              stack: Stack) -> None:
    assert person.ok("whoami").strip() == f"Cli User <{person.email}>"
    me = json.loads(person.ok("--json", "whoami"))
    assert me["email"] == person.email and me["email_verified"] is True
    path = person.home / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    session = person.credentials()[stack.gateway]
    tokens = [session["access_token"], session["refresh_token"]]
    assert all(tokens) and not any(t in out for t in tokens for out in person.outputs)
    # A session whose access token has run out is renewed on its own.
    session["access_token"] = "expired"
    path.write_text(json.dumps({stack.gateway: session}))
    assert person.ok("whoami").strip().endswith(f"<{person.email}>")
    assert person.credentials()[stack.gateway]["access_token"] != "expired"


def test_logout_ends_the_session_on_the_server_too(person: Person, stack: Stack) -> None:
    access = person.credentials()[stack.gateway]["access_token"]
    assert person.ok("logout").strip() == "Logged out."
    assert stack.gateway not in person.credentials()
    refused = person.run("whoami")
    assert refused.returncode == 3 and "not logged in" in refused.stderr
    deadline = time.monotonic() + 5  # every function refuses the session within 5 s
    while (status := requests.get(f"{stack.gateway}/function/token/userinfo", timeout=10,
                                  headers={"Authorization": f"Bearer {access}"}).status_code
           ) == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 401
    assert person.ok("login", "--email", person.email,
                     stdin=f"{PASSWORD}\n").strip() == f"Logged in as {person.email}."


def test_ocr_waits_and_writes_text_json_and_a_searchable_pdf(person: Person,
                                                             tmp_path: Path) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(SAMPLE.data)
    text = person.ok("ocr", str(page), "--wait")
    assert word_recall(SAMPLE.truth, text) >= 0.9, text
    job = json.loads(person.ok("ocr", str(page), "--wait", "--format", "json",
                               "--languages", "eng", "--no-mail"))
    assert job["status"] == "done" and job["pages"][0]["lines"], job
    assert job["notify"] == "none"
    out = tmp_path / "results"
    person.ok("ocr", str(page), str(page), "--wait", "--format", "pdf", "-o", str(out))
    assert (out / "page.ocr.pdf").read_bytes().startswith(b"%PDF-")
    assert (out / "page-2.ocr.pdf").exists()  # the same name twice: two results
    listed = [json.loads(line) for line in person.ok("--json", "jobs").splitlines()]
    assert job["job_id"] in {j["job_id"] for j in listed} and len(listed) == 4


def test_a_large_file_goes_presigned_and_a_job_can_be_shown_and_deleted(
        person: Person, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(padded_png(DIRECT_LIMIT + 300_000))
    queued = json.loads(person.ok("--json", "ocr", str(big), "--idempotency-key", "big-1"))
    again = json.loads(person.ok("--json", "ocr", str(big), "--idempotency-key", "big-1"))
    assert again["job_id"] == queued["job_id"]  # a retried upload is the same job
    shown = json.loads(person.ok("--json", "job", queued["job_id"]))
    assert shown["status"] in ("queued", "processing", "done")
    assert person.ok("job", queued["job_id"], "--delete").strip() == \
        f"Job {queued['job_id']} deleted."
    gone = person.run("job", queued["job_id"])
    assert gone.returncode == 1 and gone.stderr.strip().startswith("Error: Not found")


def test_errors_are_one_line_with_exit_codes_scripts_can_use(
        person: Person, stack: Stack, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all\n")
    refused = person.run("ocr", str(notes))
    assert refused.returncode == 1, refused
    (line,) = refused.stderr.strip().splitlines()  # the problem's title and detail
    assert line.startswith("Error: Unsupported media type") and "Traceback" not in line
    assert person.run("--gateway", "http://127.0.0.1:9", "whoami").returncode == 3
    assert Person(stack, tmp_path).run("whoami").returncode == 3  # never logged in
    as_json = Person(stack, tmp_path).run("--json", "whoami")
    assert json.loads(as_json.stderr)["exit_code"] == as_json.returncode == 3
    unreachable = person.run("login", "--email", "a@example.com", stdin=f"{PASSWORD}\n",
                             gateway="http://127.0.0.1:9")
    assert unreachable.returncode == 4 and "cannot reach Scanline" in unreachable.stderr


def test_results_never_overwrite_a_document_nor_each_other(person: Person,
                                                          tmp_path: Path) -> None:
    page = person.home / "page.png"
    page.write_bytes(SAMPLE.data)
    (person.home / "sub").mkdir()
    (person.home / "sub" / "page.png").write_bytes(SAMPLE.data)
    refused = person.run("ocr", str(page), "--wait", "--format", "pdf", "-o", str(page))
    assert refused.returncode == 2 and "is one of the documents" in refused.stderr
    (person.home / "linked").mkdir()
    os.link(page, person.home / "linked" / "page.ocr.pdf")  # the default name, hard-linked
    refused = person.run("ocr", str(page), "--wait", "--format", "pdf", "-o",
                         str(person.home / "linked"))
    assert refused.returncode == 2 and "is one of the documents" in refused.stderr
    assert page.read_bytes() == SAMPLE.data
    person.ok("ocr", "page.png", "--wait", "--format", "pdf")  # into this folder
    assert page.read_bytes() == SAMPLE.data
    assert (person.home / "page.ocr.pdf").read_bytes().startswith(b"%PDF-")
    out = tmp_path / "texts"
    person.ok("ocr", "page.png", "sub/page.png", "--wait", "-o", f"{out}/")
    assert sorted(p.name for p in out.iterdir()) == ["page-2.txt", "page.txt"]
    # One document and a folder that does not exist yet: the slash says it is a folder.
    person.ok("ocr", "page.png", "--wait", "--format", "pdf", "-o", f"{tmp_path}/new/")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["page.ocr.pdf"]
    assert person.ok("ocr", "page.png", "--wait", "-o", "-").endswith("\n")


class _Hostile(BaseHTTPRequestHandler):
    """A gateway that is not Scanline: redirects, non-JSON, answers of the wrong shape."""

    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen: list[tuple[str, bytes]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, body))
        status, headers, content = self.answers.get(self.path.split("?")[0],
                                                    (404, {}, b"{}"))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(content)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hostile.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_hostile_gateway_gets_no_secret_and_causes_one_line_errors(
        stack: Stack, tmp_path: Path, hostile: str) -> None:
    someone = Person(stack, tmp_path)
    expired = "e30.eyJleHAiOjF9.x"  # {"exp": 1}: renewed before any call
    (tmp_path / FILE_NAME).write_text(json.dumps({hostile: {
        "email": "a@example.com", "access_token": expired, "refresh_token": "R-SECRET"}}))
    _Hostile.answers = {"/function/token": (307, {"Location": f"{hostile}/steal"}, b"")}
    moved = someone.run("whoami", gateway=hostile)
    assert moved.returncode == 4 and "redirect" in moved.stderr
    assert [path for path, _ in _Hostile.seen] == ["/function/token"]  # never /steal
    _Hostile.answers = {"/function/token": (200, {}, b'{"access_token": "A", '
                                                     b'"refresh_token": "R2"}'),
                        "/function/token/userinfo": (200, {}, b"{not json"),
                        "/function/ocr-jobs": (200, {}, b"[1, 2, 3]")}
    for command in (["whoami"], ["jobs"]):
        failed = someone.run(*command, gateway=hostile)
        (line,) = failed.stderr.strip().splitlines()
        assert failed.returncode == 4 and "Traceback" not in failed.stderr, failed
        assert line.startswith("Error: the gateway"), line
    _Hostile.answers["/function/token/userinfo"] = (
        401, {"Content-Type": "application/problem+json"},
        json.dumps({"title": "Unauthorized", "detail": "x" * 100_000 + "\nError: forged"}
                   ).encode())
    flooded = someone.run("whoami", gateway=hostile)
    (line,) = flooded.stderr.strip().splitlines()
    assert flooded.returncode == 3 and len(line) < 400 and "forged" not in line
