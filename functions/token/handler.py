"""token: the OAuth 2.0 token endpoint (password and refresh-token grants), revocation,
discovery, JWKS, userinfo and password change.

The token and revocation endpoints speak RFC 6749 / RFC 7009 (form encoding, ``client_id``
and ``scope`` accepted, errors ``{"error", "error_description"}``, ``no-store``), so standard
clients work; the discovery document (``/.well-known/openid-configuration``) names the
issuer, the endpoints and the JWKS.

Password grant, bounded before any hash is computed: each client address may fail
``LOGIN_FAILURES_PER_CLIENT`` times (the attempt is reserved first, so any number in
parallel evaluate no more; a success hands it back), and each (account, client address)
pair gets a progressive delay after five failures — a stranger's failures slow the
stranger, never the owner's right password from another address. An unknown address and a
wrong password cost the same (a dummy hash) and get the same ``invalid_grant``.

Each login is a session with an absolute lifetime; refresh tokens rotate, a rotated token
presented again within ``REUSE_GRACE`` (a client's concurrent refresh) gets the same
successor as the first (one chain, never a fork), and after it ends the session (a copy is
in someone else's hands). Logging out, reuse and a password change revoke sessions, and
every function's token verifier refuses their access tokens within seconds.
"""

import uuid
from datetime import datetime
from typing import Any

from scanline.adapters.revocations import RevocationList
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.auth import Claims, KeyRing, TokenSettings, TokenSigner, TokenVerifier
from scanline.clock import Clock
from scanline.domain import audit, password_policy
from scanline.domain.password_policy import BreachedPasswords
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import LOGIN_FAILURES_PER_CLIENT, LOGIN_FAILURES_PER_PAIR
from scanline.domain.tokens import (
    ACCESS_TOKEN_LIFETIME,
    SESSION_LIFETIME,
    new_refresh_token,
    refresh_expiry,
    refresh_token_hash,
    successor_of,
    within_grace,
)
from scanline.domain.users import EMAIL, client_key, normalise_email, pair_key
from scanline.errors import InvalidInput, OAuthError, TooManyRequests, Unauthorized
from scanline.runtime import Call, Response, Routes, metrics
from scanline.runtime.routing import OAUTH2
from scanline.settings import Settings
from scanline.validation import strict_object

REFRESH_TOKEN = {"type": "string", "minLength": 1, "maxLength": 512}
# Accepted as RFC 6749 §2.3 and §3.3 allow; there is one public client and no scopes.
CLIENT = {"client_id": {"type": "string", "maxLength": 200},
          "scope": {"type": "string", "maxLength": 1000}}
PASSWORD_GRANT = strict_object(
    {"grant_type": {"const": "password"}, "username": EMAIL,
     "password": {"type": "string"}, **CLIENT},  # length: the policy, never echoed
    required=["grant_type", "username", "password"],
)
REFRESH_GRANT = strict_object(
    {"grant_type": {"const": "refresh_token"}, "refresh_token": REFRESH_TOKEN, **CLIENT},
    required=["grant_type", "refresh_token"],
)
GRANTS = {"password": PASSWORD_GRANT, "refresh_token": REFRESH_GRANT}
# The grant type is checked first, so an unknown one is ``unsupported_grant_type`` (its
# error points at /grant_type) rather than a pile of mismatches of every other field.
TOKEN_REQUEST = {
    "type": "object", "required": ["grant_type"],
    "properties": {"grant_type": {"enum": sorted(GRANTS)}},
    "allOf": [{"if": {"properties": {"grant_type": {"const": name}}}, "then": schema}
              for name, schema in GRANTS.items()],
}
# RFC 7009 §2.1 (``token``, ``token_type_hint``: a refresh or an access token);
# ``refresh_token`` is the older form. The hint is not needed (either kind is found), and
# §2.1 has a hint the server does not know ignored, not refused.
REVOCATION = {
    **strict_object({"token": {"type": "string", "minLength": 1, "maxLength": 4096},
                     "refresh_token": REFRESH_TOKEN,
                     "token_type_hint": {"type": "string", "maxLength": 64}, **CLIENT},
                    required=[]),
    # Said as "'token' is a required property" (anyOf said "{} is not valid under any of
    # the given schemas").
    "if": {"required": ["refresh_token"]}, "else": {"required": ["token"]},
}
TOKENS = strict_object(
    {"access_token": {"type": "string", "minLength": 1},
     "token_type": {"const": "bearer"},
     "expires_in": {"type": "integer", "minimum": 1},
     "refresh_token": {"type": "string", "minLength": 1}},
    required=["access_token", "token_type", "expires_in", "refresh_token"],
)
REVOKED = strict_object({"status": {"const": "revoked"}}, required=["status"])
JWKS = strict_object(
    {"keys": {"type": "array", "minItems": 1, "items": strict_object(
        {"kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "x": {"type": "string"},
         "kid": {"type": "string"}, "alg": {"const": "EdDSA"}, "use": {"const": "sig"}},
        required=["kty", "crv", "x", "kid", "alg", "use"])}},
    required=["keys"],
)
USERINFO = strict_object(
    {"sub": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
     "email": {"type": "string"}, "email_verified": {"type": "boolean"},
     "created_at": {"type": "string", "format": "date-time"}},
    required=["sub", "name", "email", "email_verified", "created_at"],
)
PASSWORD_CHANGE = strict_object({"current_password": {"type": "string"},
                                 "new_password": {"type": "string"}},
                                required=["current_password", "new_password"])
CHANGED = strict_object({"status": {"const": "password_changed"}}, required=["status"])
_URL = {"type": "string", "format": "uri"}
DISCOVERY = strict_object(
    {"issuer": _URL, "token_endpoint": _URL, "revocation_endpoint": _URL, "jwks_uri": _URL,
     "userinfo_endpoint": _URL,
     **{name: {"type": "array", "items": {"type": "string"}} for name in (
         "grant_types_supported", "response_types_supported",
         "token_endpoint_auth_methods_supported",
         "revocation_endpoint_auth_methods_supported")}},
    required=["issuer", "token_endpoint", "revocation_endpoint", "jwks_uri",
              "grant_types_supported"],
)


def _form_or_json(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"application/x-www-form-urlencoded": schema, "application/json": schema}


BAD_CREDENTIALS = "the username or password is wrong"
BAD_REFRESH_TOKEN = "the refresh token is invalid, expired or revoked"

routes = Routes()


def _agent(request: Call) -> str | None:
    return request.headers.get("User-Agent")


def _keep(uow: UnitOfWork, refresh_token: str, user_id: uuid.UUID, session_id: uuid.UUID,
          session_expires_at: datetime, now: datetime) -> None:
    uow.refresh_tokens.add(token_hash=refresh_token_hash(refresh_token), user_id=user_id,
                           family_id=session_id, now=now,
                           expires_at=refresh_expiry(now, session_expires_at))


def _tokens(token_signer: TokenSigner, user_id: uuid.UUID, session_id: uuid.UUID,
            refresh_token: str) -> dict[str, Any]:
    return {"access_token": token_signer.issue(str(user_id), str(session_id)),
            "token_type": "bearer", "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": refresh_token}


def _check_password(uow: UnitOfWork, passwords: PasswordHasher, email: str, password: str,
                    request: Call, clock: Clock) -> Any:
    """The account ``email`` if ``password`` is its password, else ``invalid_grant`` —
    within the per-client and per-pair throttles, both counted before the hash."""
    password = password_policy.normalise(password)
    try:
        password_policy.check_length(password)  # before any hashing
    except InvalidInput:
        raise OAuthError("invalid_grant", BAD_CREDENTIALS) from None
    now, client = clock.now(), request.client
    per_client, per_pair = client_key(client), pair_key(email, client)
    # Short transactions, none holding a row while waiting for another: a burst of
    # attempts from one client queues on its counter for one statement each, not longer.
    with uow:
        retry_after = uow.limits.hit(LOGIN_FAILURES_PER_CLIENT, per_client, now)
    with uow:
        # Counter before compare: the attempt is counted as failed before its hash, with
        # the pair's row locked, so parallel attempts of one pair are judged one after
        # the other and no more than ``free`` of them are evaluated without a wait.
        pair = uow.limits.throttle_state(LOGIN_FAILURES_PER_PAIR, per_pair, now)
        pair_wait = LOGIN_FAILURES_PER_PAIR.wait(pair, now)
        if retry_after is None and pair_wait is None:
            uow.limits.save_throttle(LOGIN_FAILURES_PER_PAIR, per_pair,
                                     LOGIN_FAILURES_PER_PAIR.failed(pair, now), now)
        elif retry_after is None:
            uow.limits.refund(LOGIN_FAILURES_PER_CLIENT, per_client)  # not evaluated
        user = uow.users.by_email(email)
        if retry_after is not None or pair_wait is not None:
            uow.audit.record(audit.THROTTLED, audit.REFUSED, at=now,
                             account=str(user.id) if user else None, client=client,
                             user_agent=_agent(request))
    wait = retry_after or pair_wait
    if wait is not None:
        raise TooManyRequests("too many failed logins from this address; try again later",
                              retry_after=wait)
    # Outside any transaction: hashing takes tens of milliseconds. An unknown address costs
    # a dummy hash, the same as a wrong password.
    if passwords.verify(password, user.password_hash if user is not None else None):
        with uow:
            uow.limits.refund(LOGIN_FAILURES_PER_CLIENT, per_client)
            uow.limits.clear(LOGIN_FAILURES_PER_PAIR, per_pair)
        return user
    with uow:
        uow.audit.record(audit.LOGIN_FAILED, audit.REFUSED, at=now,
                         account=str(user.id) if user else None, client=client,
                         user_agent=_agent(request))
    raise OAuthError("invalid_grant", BAD_CREDENTIALS)


def password_grant(body: dict[str, Any], request: Call, uow: UnitOfWork,
                   passwords: PasswordHasher, token_signer: TokenSigner,
                   clock: Clock) -> dict[str, Any]:
    try:
        email = normalise_email(body["username"], field="username")
    except InvalidInput:
        raise OAuthError("invalid_grant", BAD_CREDENTIALS) from None
    user = _check_password(uow, passwords, email, body["password"], request, clock)
    password = password_policy.normalise(body["password"])
    # After a change of hashing parameters, each account is upgraded at its next login.
    upgraded = passwords.hash(password) if passwords.needs_rehash(user.password_hash) else None
    now = clock.now()
    with uow:
        if upgraded is not None:
            uow.users.replace_password_hash(user.id, upgraded)
        expires_at = now + SESSION_LIFETIME
        session_id = uow.sessions.start(user.id, now, expires_at)
        refresh_token = new_refresh_token()
        _keep(uow, refresh_token, user.id, session_id, expires_at, now)
        uow.audit.record(audit.LOGIN, audit.OK, at=now, account=str(user.id),
                         client=request.client, user_agent=_agent(request))
    return _tokens(token_signer, user.id, session_id, refresh_token)


def refresh_grant(body: dict[str, Any], request: Call, uow: UnitOfWork,
                  token_signer: TokenSigner, refresh_key: bytes, revocations: RevocationList,
                  clock: Clock) -> dict[str, Any]:
    now, presented = clock.now(), body["refresh_token"]
    with uow:
        token = uow.refresh_tokens.lock(refresh_token_hash(presented))
        session = uow.sessions.get(token.family_id) if token is not None else None
        live = (token is not None and session is not None and not session.revoked
                and not token.revoked and token.expires_at > now and session.expires_at > now)
        if live and (token.rotated_at is None or within_grace(token.rotated_at, now)):
            successor = successor_of(presented, refresh_key)
            if token.rotated_at is None:
                uow.refresh_tokens.mark_rotated(token.id, now)
                _keep(uow, successor, token.user_id, session.id, session.expires_at, now)
            uow.audit.record(audit.REFRESH, audit.OK, at=now, account=str(token.user_id),
                             client=request.client, user_agent=_agent(request))
            return _tokens(token_signer, token.user_id, session.id, successor)
        if live:
            # A rotated token, again, after the grace: someone else holds a copy. End the
            # session (this commits) and refuse.
            uow.sessions.revoke(session.id, now, "refresh token reused")
            uow.audit.record(audit.REUSE_DETECTED, audit.REFUSED, at=now,
                             account=str(token.user_id), client=request.client,
                             user_agent=_agent(request))
    if live:
        revocations.revoked_now(session.id)
    raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)


@routes.http("/", "POST", summary="Log in (password grant) or refresh the tokens",
             body=_form_or_json(TOKEN_REQUEST), responses={200: TOKENS}, errors=OAUTH2)
def grant(body: dict[str, Any], request: Call, uow: UnitOfWork, passwords: PasswordHasher,
          token_signer: TokenSigner, refresh_key: bytes, revocations: RevocationList,
          clock: Clock) -> Response:
    if body["grant_type"] == "password":
        with metrics.login_outcome():
            return Response(password_grant(body, request, uow, passwords, token_signer, clock))
    return Response(refresh_grant(body, request, uow, token_signer, refresh_key, revocations,
                                  clock))


def _session_of_access_token(token: str, token_keys: KeyRing, settings: Settings,
                             clock: Clock) -> str | None:
    """The session an access token of ours belongs to (even a revoked one), or None."""
    verifier = TokenVerifier(token_keys, TokenSettings.from_settings(settings), clock,
                             _NOTHING_REVOKED)
    try:
        return verifier.verify(token).session_id
    except Unauthorized:
        return None


class _NothingRevoked:
    def is_revoked(self, session_id: str) -> bool:
        return False


_NOTHING_REVOKED = _NothingRevoked()


@routes.http("/revoke", "POST", summary="Log out: revoke a refresh or access token's session",
             body=_form_or_json(REVOCATION), responses={200: REVOKED}, errors=OAUTH2)
def revoke(body: dict[str, Any], request: Call, uow: UnitOfWork, token_keys: KeyRing,
           settings: Settings, revocations: RevocationList, clock: Clock) -> Response:
    """RFC 7009: the answer is 200 whether or not the token was valid."""
    presented = body.get("token") or body["refresh_token"]
    now = clock.now()
    with uow:
        token = uow.refresh_tokens.lock(refresh_token_hash(presented))
        session_id: Any = token.family_id if token is not None else _session_of_access_token(
            presented, token_keys, settings, clock)
        session = uow.sessions.get(session_id) if session_id is not None else None
        if session is not None and uow.sessions.revoke(session.id, now, "logout"):
            uow.audit.record(audit.LOGOUT, audit.OK, at=now, account=str(session.user_id),
                             client=request.client, user_agent=_agent(request))
    if session is not None:
        revocations.revoked_now(session.id)
    return Response({"status": "revoked"})


@routes.http("/jwks.json", "GET", responses={200: JWKS})
def jwks(token_keys: KeyRing) -> Response:
    """The public keys that verify access tokens (RFC 7517)."""
    return Response(token_keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@routes.http("/.well-known/openid-configuration", "GET", responses={200: DISCOVERY})
def discovery(settings: Settings) -> Response:
    """Where a client or a resource server finds the endpoints and keys: RFC 8414
    authorization server metadata, served where OpenID Connect clients look. It is not an
    OpenID Provider (no authorization endpoint, no ID tokens), and does not claim to be."""
    issuer = TokenSettings.from_settings(settings).issuer
    return Response({
        "issuer": issuer, "token_endpoint": issuer,
        "revocation_endpoint": f"{issuer}/revoke", "jwks_uri": f"{issuer}/jwks.json",
        "userinfo_endpoint": f"{issuer}/userinfo",
        # No authorization endpoint (the password and refresh-token grants only), so no
        # response type; and no ID tokens, so nothing is claimed about them.
        "grant_types_supported": sorted(GRANTS), "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
    }, headers={"Cache-Control": "public, max-age=300"})


@routes.http("/userinfo", "GET", "POST", responses={200: USERINFO}, auth=True)
def userinfo(caller: Claims, uow: UnitOfWork) -> Response:
    """The account the access token belongs to."""
    with uow:
        user = uow.users.get(caller.subject)
    if user is None:
        raise Unauthorized("the account of this token no longer exists")
    return Response({"sub": str(user.id), "name": user.name, "email": user.email,
                     "email_verified": user.verified_at is not None,
                     "created_at": user.created_at.isoformat()},
                    headers={"Cache-Control": "no-store"})


@routes.http("/password", "POST", summary="Change the password (ends every other session)",
             body={"application/json": PASSWORD_CHANGE}, responses={200: CHANGED}, auth=True)
def change_password(caller: Claims, body: dict[str, Any], request: Call, uow: UnitOfWork,
                    passwords: PasswordHasher, breached_passwords: BreachedPasswords,
                    revocations: RevocationList, clock: Clock) -> Response:
    with uow:
        user = uow.users.get(caller.subject)
    if user is None:
        raise Unauthorized("the account of this token no longer exists")
    new_password = password_policy.normalise(body["new_password"])
    password_policy.check(new_password, email=user.email, name=user.name,
                          breached=breached_passwords, pointer="/new_password")
    try:
        _check_password(uow, passwords, user.email, body["current_password"], request, clock)
    except OAuthError:
        raise InvalidInput("the current password is wrong", errors=[
            {"pointer": "/current_password", "detail": "is not the account's password"}]) from None
    new_hash = passwords.hash(new_password)
    now = clock.now()
    with uow:
        uow.users.replace_password_hash(user.id, new_hash)
        uow.sessions.revoke_all(user.id, now, "password changed", keep=caller.session_id)
        uow.audit.record(audit.PASSWORD_CHANGED, audit.OK, at=now, account=str(user.id),
                         client=request.client, user_agent=_agent(request))
    return Response({"status": "password_changed"})
