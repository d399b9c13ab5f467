"""The gateway's HTTP contract as the CLI uses it: calls, errors, and a session that renews
itself.

Every answer that is not the one expected becomes an ``ApiError`` whose message is the
problem document's title and detail on one line (or the OAuth error's), and whose exit
code says what a script should do about it (``EXIT_*``). The access token is renewed
with the refresh token shortly before it expires, and once more if a call is refused
with 401; a refresh that is refused ends the local session.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from typing import Any

import click
import requests

from scanline_cli.credentials import Session, Store

EXIT_REFUSED = 1  # the request was refused (4xx): change it before trying again
EXIT_LOGIN = 3  # not logged in, or the session ended: run `scanline login`
EXIT_UNAVAILABLE = 4  # Scanline could not be reached or failed (5xx): try again later
EXIT_JOB_FAILED = 5  # a document was taken but could not be recognised
RENEW_BEFORE = 30  # seconds before expiry an access token is renewed
USER_AGENT = "scanline-cli/0.1"
MESSAGE_LIMIT = 300  # characters of a server's message shown (one line, whatever it sent)


def one_line(text: str) -> str:
    """A server's words as one short line: a hostile answer cannot flood the terminal
    or forge further lines."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= MESSAGE_LIMIT else line[:MESSAGE_LIMIT] + "…"


class ApiError(click.ClickException):
    def __init__(self, message: str, exit_code: int = EXIT_REFUSED,
                 status: int | None = None) -> None:
        super().__init__(one_line(message))
        self.exit_code, self.status = exit_code, status

    # Set by the command group while its context still exists: click shows the error
    # only after the context has gone.
    as_json = False

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": self.message, "status": self.status,
                                   "exit_code": self.exit_code}), err=True)
        else:
            super().show(file)


def document(response: requests.Response) -> Any:
    """The JSON an answer carries, or a one-line error when it is not JSON at all."""
    try:
        return response.json()
    except ValueError:
        raise ApiError(f"the gateway answered {response.status_code} with something that is "
                       f"not JSON: {response.text[:80]!r}", EXIT_UNAVAILABLE) from None


def error_of(response: requests.Response) -> ApiError:
    """One line from a problem document (RFC 9457), an OAuth error (RFC 6749) or, failing
    both, the status line."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "title" in body:
        message = f"{body['title']}: {body.get('detail') or ''}".rstrip(": ")
    elif isinstance(body, dict) and "error" in body:
        message = f"{body['error']}: {body.get('error_description') or ''}".rstrip(": ")
    else:
        message = f"HTTP {status} {response.reason}"
    if status == 429 and response.headers.get("Retry-After"):
        message += f" (retry after {response.headers['Retry-After']} s)"
    code = EXIT_UNAVAILABLE if status >= 500 else EXIT_LOGIN if status == 401 else EXIT_REFUSED
    return ApiError(message, code, status)


def _expires_at(access_token: str) -> float:
    """The token's ``exp`` (unverified: the server verifies; this only decides when to
    renew), or 0 when it cannot be read."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0


def _tokens(response: requests.Response) -> tuple[str, str]:
    tokens = document(response)
    if not (isinstance(tokens, dict) and isinstance(tokens.get("access_token"), str)
            and isinstance(tokens.get("refresh_token"), str)):
        raise ApiError("the token endpoint answered without tokens", EXIT_UNAVAILABLE)
    return tokens["access_token"], tokens["refresh_token"]


class Api:
    def __init__(self, gateway: str, store: Store, timeout: float = 60) -> None:
        self.gateway = gateway.rstrip("/")
        self.store, self.timeout = store, timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT

    def url(self, function: str, path: str = "") -> str:
        return f"{self.gateway}/function/{function}{path}"

    def call(self, method: str, function: str, path: str = "", *, auth: bool = False,
             expect: Iterable[int] = (200,), **options: Any) -> requests.Response:
        expected = set(expect)
        response = self._send(method, self.url(function, path), auth, **options)
        if auth and response.status_code == 401 and "data" not in options:
            self.renew()  # revoked or expired early: one more try with fresh tokens
            response = self._send(method, self.url(function, path), auth, **options)
        if response.status_code in expected:
            return response
        raise error_of(response)

    def send_to(self, url: str, **options: Any) -> requests.Response:
        """A POST outside the gateway (a presigned upload to the object store)."""
        return self._request("POST", url, **options)

    def _send(self, method: str, url: str, auth: bool, **options: Any) -> requests.Response:
        headers = dict(options.pop("headers", None) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self._access_token()}"
        return self._request(method, url, headers=headers, **options)

    def _request(self, method: str, url: str, **options: Any) -> requests.Response:
        options.setdefault("timeout", self.timeout)
        try:
            # Never followed: a redirect would carry the token, the password or the refresh
            # token (re-sent as the body on a 307) to wherever it points.
            response = self.http.request(method, url, allow_redirects=False, **options)
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach Scanline at {self.gateway}: {exc}",
                           EXIT_UNAVAILABLE) from None
        if response.is_redirect:
            raise ApiError(f"{url} answered a redirect to {response.headers.get('Location')!r}"
                           "; Scanline never redirects, so it is not followed (check "
                           "--gateway)", EXIT_UNAVAILABLE, response.status_code)
        return response

    # --- the session --------------------------------------------------------------------
    def session(self) -> Session:
        session = self.store.get(self.gateway)
        if session is None or not session.refresh_token:
            raise ApiError(f"not logged in to {self.gateway}: run `scanline login`", EXIT_LOGIN)
        return session

    def _access_token(self) -> str:
        session = self.session()
        if _expires_at(session.access_token) - RENEW_BEFORE < time.time():
            session = self.renew()
        return session.access_token

    def log_in(self, email: str, password: str) -> Session:
        tokens = _tokens(self.call("POST", "token", data={
            "grant_type": "password", "username": email, "password": password}))
        return self._keep(Session(email, *tokens))

    def renew(self) -> Session:
        session = self.session()
        response = self._request("POST", self.url("token"), data={
            "grant_type": "refresh_token", "refresh_token": session.refresh_token})
        if response.status_code == 400:  # invalid_grant: revoked, expired or reused
            self.store.forget(self.gateway)
            raise ApiError(f"the session ended ({error_of(response).message}): run "
                           "`scanline login`", EXIT_LOGIN)
        if response.status_code != 200:
            raise error_of(response)
        return self._keep(Session(session.email, *_tokens(response)))

    def _keep(self, session: Session) -> Session:
        self.store.put(self.gateway, session)
        return session

    def log_out(self) -> None:
        """Revoke the session on the server (RFC 7009), then forget it here."""
        session = self.store.get(self.gateway)
        if session is not None and session.refresh_token:
            self.call("POST", "token", "/revoke", data={
                "token": session.refresh_token, "token_type_hint": "refresh_token"})
        self.store.forget(self.gateway)
