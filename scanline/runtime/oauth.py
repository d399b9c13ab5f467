"""Errors of the OAuth 2.0 endpoints as RFC 6749 §5.2 and RFC 7009 write them.

Standard clients (Authlib's ``OAuth2Client``, oauthlib, …) read ``error`` to tell a bad
password (``invalid_grant``) from a malformed request (``invalid_request``) or a grant the
server does not know (``unsupported_grant_type``); a problem document gives them nothing
they can act on. Operations declared ``errors=OAUTH2`` are answered this way; every
answer of theirs, success or failure, is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json

from flask import Response as FlaskResponse

from scanline.errors import (
    BadRequest,
    DependencyUnavailable,
    InvalidInput,
    OAuthError,
    ScanlineError,
    TooManyRequests,
    UnsupportedMediaType,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANT_TYPE = "/grant_type"


def _code(exc: ScanlineError) -> tuple[int, str]:
    if isinstance(exc, OAuthError):
        return exc.status, exc.error
    if isinstance(exc, InvalidInput) and _grant_type_fault(exc):
        return 400, "unsupported_grant_type"
    if isinstance(exc, (InvalidInput, BadRequest, UnsupportedMediaType)):
        return 400, "invalid_request"
    if isinstance(exc, (TooManyRequests, DependencyUnavailable)):
        return exc.status, "temporarily_unavailable"
    return exc.status, "server_error" if exc.status >= 500 else "invalid_request"


def _grant_type_fault(exc: InvalidInput) -> str | None:
    return next((e["detail"] for e in exc.errors or [] if e.get("pointer") == GRANT_TYPE), None)


def _description(exc: ScanlineError) -> str:
    """The detail, and for a field problem the field's own complaint (clients show it)."""
    if isinstance(exc, InvalidInput) and exc.errors:
        first = exc.errors[0]
        return f"{exc.detail}: {first.get('pointer') or '/'} {first.get('detail', '')}".strip()
    return exc.detail


def error_response(exc: ScanlineError | None) -> FlaskResponse:
    """The RFC 6749 answer for ``exc`` (None: an unexpected failure)."""
    status, error = _code(exc) if exc is not None else (500, "server_error")
    description = (_description(exc) if exc is not None
                   else "the server failed; the error was logged")
    headers = {**(exc.headers if exc is not None else {}), **NO_STORE}
    headers.pop("WWW-Authenticate", None)
    return FlaskResponse(json.dumps({"error": error, "error_description": description}),
                         status=status, headers=headers, content_type="application/json")
