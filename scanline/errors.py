"""The few exceptions a handler raises; the template maps each to a response.

For an HTTP caller the status becomes an RFC 9457 problem; for an event delivery the
same status decides the message's fate: 2xx ack, 4xx dead-letter at once, 5xx retry.
"""

from __future__ import annotations

from typing import Any


class ScanlineError(Exception):
    status: int = 500
    title: str = "Internal error"
    slug: str = "internal"

    def __init__(self, detail: str = "", *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}


class BadRequest(ScanlineError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(ScanlineError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="scanline"')


class Forbidden(ScanlineError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ScanlineError):
    status, title, slug = 404, "Not found", "not-found"


class MethodNotAllowed(ScanlineError):
    status, title, slug = 405, "Method not allowed", "method-not-allowed"


class Conflict(ScanlineError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ScanlineError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(ScanlineError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class InvalidInput(ScanlineError):
    """The request is well-formed but its content breaks a rule (a field, a policy)."""

    status, title, slug = 422, "Invalid input", "invalid-input"


class TooManyRequests(ScanlineError):
    status, title, slug = 429, "Too many requests", "too-many-requests"

    def __init__(self, detail: str = "", *, retry_after: int | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, int(retry_after)))


class OAuthError(ScanlineError):
    """An error of the OAuth 2.0 token or revocation endpoint (RFC 6749 §5.2), answered as
    ``{"error", "error_description"}`` so standard clients can tell its cause."""

    title, slug = "OAuth error", "oauth"

    def __init__(self, error: str, detail: str, *, status: int = 400, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.error, self.status = error, status


class DependencyUnavailable(ScanlineError):
    """A server we depend on (database, broker, S3, SMTP) did not answer: retry later."""

    status, title, slug = 503, "Service unavailable", "dependency-unavailable"

    def __init__(self, dependency: str, detail: str = "", **kw: Any) -> None:
        super().__init__(detail or f"{dependency} is not available; retry later", **kw)
        self.dependency = dependency
        self.headers.setdefault("Retry-After", "2")
