"""The security events the account functions record (``uow.audit``), spelled once.

Each row says when, which event, its outcome, whose account (a user id; for an address
without an account, its key), from which client address and user agent. Never a
password, a code or a token: the names below are all a row can say about what happened.
"""

from __future__ import annotations

REGISTERED = "registered"
CODE_ISSUED = "code-issued"
CODE_NOT_SENT = "code-not-sent"  # over the mail caps
VERIFIED = "verified"
VERIFY_FAILED = "verify-failed"
LOGIN = "login"
LOGIN_FAILED = "login-failed"
THROTTLED = "throttled"
REFRESH = "refresh"
REUSE_DETECTED = "refresh-reuse"
LOGOUT = "logout"
PASSWORD_CHANGED = "password-changed"
RECOVERED = "password-recovered"

OK, REFUSED = "ok", "refused"
