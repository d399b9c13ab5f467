"""The ``scanline`` commands: an account, its session, and OCR jobs.

Exit codes scripts can rely on: 0 done; 1 refused (a 4xx: fix the request); 2 wrong
usage; 3 not logged in or the session ended; 4 Scanline unreachable or failing (retry
later); 5 a document could not be recognised (its job failed). ``--json`` prints what
the gateway answered, one JSON document per line, instead of sentences.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from scanline_cli import uploads
from scanline_cli.api import EXIT_JOB_FAILED, EXIT_UNAVAILABLE, Api, ApiError, document
from scanline_cli.credentials import Session, Store
from scanline_cli.files import replace as replace_file

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
FINISHED = ("done", "failed")
WAIT_STEP = 30  # seconds per ?wait= call (ocr-jobs' OCR_MAX_WAIT_SECONDS)
# --format → (the job's resource, the file extension written with -o). ".ocr.pdf": the
# searchable PDF of scan.pdf never lands on scan.pdf itself.
FORMATS = {"text": ("/text", ".txt"), "json": ("", ".json"), "hocr": ("/hocr", ".hocr"),
           "pdf": ("/pdf", ".ocr.pdf")}


@dataclass
class Context:
    api: Api
    as_json: bool

    def say(self, sentence: str, document: Any) -> None:
        click.echo(json.dumps(document) if self.as_json else sentence)


pass_context = click.make_pass_decorator(Context)


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            exc.as_json = getattr(ctx.obj, "as_json", False)
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            # An answer of the right status but not of the contract's shape.
            failure = ApiError(f"the gateway's answer is not what Scanline answers ({exc!r}); "
                               "check --gateway", EXIT_UNAVAILABLE)
            failure.as_json = getattr(ctx.obj, "as_json", False)
            raise failure from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--gateway", envvar="SCANLINE_GATEWAY", default=DEFAULT_GATEWAY,
              show_default=True, help="The OpenFaaS gateway Scanline is behind "
                                      "(or SCANLINE_GATEWAY).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.version_option("0.1.0", prog_name="scanline")
@click.pass_context
def cli(ctx: click.Context, gateway: str, as_json: bool) -> None:
    """Scanline from the command line: sign up, log in, and OCR documents."""
    ctx.obj = Context(Api(gateway, Store()), as_json)


# --- the account ---------------------------------------------------------------------------

@cli.command()
@click.option("--email", prompt=True, help="Your address: the code is mailed there.")
@click.option("--name", prompt=True, help="The name on the account.")
@click.password_option(help="Asked without echo when not given.")
@pass_context
def signup(context: Context, email: str, name: str, password: str) -> None:
    """Start a sign-up; then `scanline verify CODE` with the mailed code."""
    answer = document(context.api.call("POST", "register", expect=(202,), json={
        "name": name, "email": email, "password": password}))
    context.api.store.put(context.api.gateway, Session(email, pending=True))
    context.say(f"A code is on its way to {email}: run `scanline verify CODE`.", answer)


@cli.command()
@click.argument("code")
@click.option("--email", help="The address signed up (default: the last `scanline signup`).")
@click.option("--password", prompt=True, hide_input=True,
              help="The sign-up's password (asked without echo).")
@pass_context
def verify(context: Context, code: str, email: str | None, password: str) -> None:
    """Complete the sign-up with the mailed CODE, and log in."""
    email = email or _pending_email(context.api)
    answer = document(context.api.call("POST", "verify-otp", json={
        "email": email, "otp": code, "password": password}))
    context.api.log_in(email, password)
    context.say(f"Verified: logged in as {email}.", answer)


def _pending_email(api: Api) -> str:
    session = api.store.get(api.gateway)
    if session is None:
        raise click.UsageError("no sign-up to verify here: give --email")
    return session.email


@cli.command()
@click.option("--email", prompt=True)
@click.option("--password", prompt=True, hide_input=True, help="Asked without echo.")
@pass_context
def login(context: Context, email: str, password: str) -> None:
    """Log in; the session is kept (mode 0600) and renewed on its own."""
    context.api.log_in(email, password)
    context.say(f"Logged in as {email}.", {"status": "logged_in", "email": email})


@cli.command()
@pass_context
def logout(context: Context) -> None:
    """End the session on the server and forget it here."""
    context.api.log_out()
    context.say("Logged out.", {"status": "logged_out"})


@cli.command()
@pass_context
def whoami(context: Context) -> None:
    """The account this session belongs to."""
    me = document(context.api.call("GET", "token", "/userinfo", auth=True))
    context.say(f"{me['name']} <{me['email']}>", me)


# --- OCR -----------------------------------------------------------------------------------

@cli.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--languages", help="Tesseract languages joined with +, e.g. eng+deu.")
@click.option("--engine", type=click.Choice(["auto", "tesseract", "keras-ocr"]))
@click.option("--callback-url", help="Where the signed completion event is POSTed.")
@click.option("--no-mail", is_flag=True, help="No mail when a job ends (notify=none).")
@click.option("--idempotency-key", help="The same key makes a retried upload the same job "
                                        "(with several files: the key, then -2, -3, …).")
@click.option("--wait/--no-wait", default=False, help="Wait for the results and write them.")
@click.option("--format", "output", type=click.Choice(list(FORMATS)), default="text",
              show_default=True, help="What --wait writes.")
@click.option("-o", "--out", type=click.Path(),
              help="Where to write: a file (one document), a folder (several, or a name "
                   "ending in /), or - for standard output; default: standard output "
                   "(for pdf: NAME.ocr.pdf in this folder).")
@click.option("--timeout", default=600, show_default=True, help="Seconds --wait waits.")
@pass_context
def ocr(context: Context, files: tuple[Path, ...], languages: str | None, engine: str | None,
        callback_url: str | None, no_mail: bool, idempotency_key: str | None, wait: bool,
        output: str, out: str | None, timeout: int) -> None:
    """Upload FILES (PNG, JPEG, TIFF, WebP, BMP or PDF) for OCR."""
    options = {k: v for k, v in {"languages": languages, "engine": engine,
                                 "callback_url": callback_url,
                                 "notify": "none" if no_mail else None}.items() if v}
    targets = _targets(files, output, out) if wait else [None] * len(files)
    jobs = []
    with _bar(context, sum(f.stat().st_size for f in files), "uploading") as advance:
        for n, path in enumerate(files):
            key = idempotency_key and (idempotency_key if n == 0 else f"{idempotency_key}-{n+1}")
            jobs.append((path, uploads.upload(context.api, path, options, key, advance)))
    if not wait:
        for path, job in jobs:
            context.say(f"{path}: job {job['job_id']} queued", {"file": str(path), **job})
        return
    failed = 0
    for (path, job), target in zip(jobs, targets, strict=True):
        finished = _wait(context.api, job["job_id"], timeout)
        if finished["status"] == "failed":
            failed += 1
            click.echo(f"{path}: job {job['job_id']} failed: {finished.get('error')}", err=True)
            continue
        _write(context, str(path), finished, output, target)
    if failed:
        sys.exit(EXIT_JOB_FAILED)


def _targets(files: tuple[Path, ...], output: str, out: str | None) -> list[Path | None]:
    """Where each document's result goes (None: standard output), decided before anything
    is uploaded: never onto an input, never two results onto one file. ``out`` is as
    typed: a trailing slash (which ``Path`` drops) names a folder."""
    if (out is None and output != "pdf") or out == "-":
        return [None] * len(files)
    extension = FORMATS[output][1]
    if out is not None and len(files) == 1 and not (Path(out).is_dir()
                                                   or out.endswith(("/", os.sep))):
        targets = [Path(out)]
    else:
        folder, taken = Path(out) if out else Path.cwd(), set[str]()
        targets = []
        for path in files:
            name, n = path.stem + extension, 1
            while name in taken:
                n += 1
                name = f"{path.stem}-{n}{extension}"
            taken.add(name)
            targets.append(folder / name)
    inputs = {_identity(path) for path in files}
    for target in targets:
        if _identity(target) in inputs:
            raise click.UsageError(f"{target} is one of the documents: choose another -o")
    return targets


def _identity(path: Path) -> object:
    """What a path names: the file itself (device and inode), so that a symbolic or a
    hard link to a document is that document; the resolved path if nothing is there yet."""
    try:
        found = path.stat()
    except OSError:
        return path.resolve()
    return found.st_dev, found.st_ino


@contextmanager
def _bar(context: Context, total: int, label: str) -> Iterator[uploads.Progress]:
    """A progress bar on a terminal's standard error; silent otherwise (scripts)."""
    if context.as_json or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _wait(api: Api, job_id: str, timeout: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = document(api.call("GET", "ocr-jobs", f"/{job_id}", auth=True,
                                timeout=WAIT_STEP + 30, params={"wait": WAIT_STEP}))
        if job["status"] in FINISHED:
            return job
        if time.monotonic() > deadline:
            raise ApiError(f"job {job_id} is still {job['status']} after {timeout} s; "
                           f"see `scanline job {job_id}`", EXIT_UNAVAILABLE)


def _write(context: Context, name: str, job: dict[str, Any], output: str,
           target: Path | None) -> None:
    resource = FORMATS[output][0]
    content = json.dumps(job, indent=2).encode() + b"\n" if output == "json" else \
        context.api.call("GET", "ocr-jobs", f"/{job['job_id']}{resource}", auth=True).content
    if target is None:
        if output == "text" and not content.endswith(b"\n"):
            content += b"\n"
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_file(target, content)
    click.echo(f"{name}: {output} written to {target}", err=True)


@cli.command()
@click.option("--status", type=click.Choice(["awaiting_upload", "queued", "processing",
                                             "done", "failed"]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
@click.option("--all", "everything", is_flag=True, help="Every page of the listing.")
@pass_context
def jobs(context: Context, status: str | None, limit: int, everything: bool) -> None:
    """Your jobs, newest first."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    while True:
        page = document(context.api.call("GET", "ocr-jobs", auth=True, params=params))
        for job in page["jobs"]:
            context.say(f"{job['job_id']}  {job['status']:<15} {job['created_at']}", job)
        if not (everything and page["next_cursor"]):
            return
        params["cursor"] = page["next_cursor"]


@cli.command()
@click.argument("job_id", type=click.UUID)
@click.option("--delete", is_flag=True, help="Delete the job with its document and results.")
@click.option("--format", "output", type=click.Choice(list(FORMATS)),
              help="Write a done job's results instead of showing it.")
@click.option("-o", "--out", type=click.Path(),
              help="Where --format writes (default: standard output; for pdf "
                   "JOB_ID.ocr.pdf in this folder).")
@pass_context
def job(context: Context, job_id: uuid.UUID, delete: bool, output: str | None,
        out: str | None) -> None:
    """Show one job, write its results, or delete it."""
    if delete:
        context.api.call("DELETE", "ocr-jobs", f"/{job_id}", auth=True, expect=(204,))
        context.say(f"Job {job_id} deleted.", {"job_id": str(job_id), "status": "deleted"})
        return
    found = document(context.api.call("GET", "ocr-jobs", f"/{job_id}", auth=True))
    if output is not None:
        if found["status"] != "done":
            raise ApiError(f"job {job_id} is {found['status']}; its results exist once it is "
                           "done (or wait: scanline ocr … --wait)")
        target = _targets((Path(str(job_id)),), output, out)[0]
        _write(context, str(job_id), found, output, target)
        return
    summary = f"{found['job_id']}  {found['status']}"
    if found.get("error"):
        summary += f": {found['error']}"
    if found.get("text"):
        summary += "\n" + found["text"]
    context.say(summary, found)
