"""token: log in (password grant), refresh (rotating refresh tokens), revoke, JWKS, userinfo.

Password grant: an unknown address and a wrong password get the same 401 after the same
work (a dummy hash is verified when there is no account); failures are counted per
address in PostgreSQL and, over the limit, refused before any hashing (429). The right
password on an unverified account → 403. Refresh tokens are opaque, stored hashed and
rotated on every use; presenting a rotated token again (a sign it was stolen) revokes
every token of its family, as Supabase Auth does.
"""

import uuid
from datetime import datetime
from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.auth import Claims, KeyRing, TokenSigner
from scanline.clock import Clock
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import LOGIN_FAILURES
from scanline.domain.tokens import (
    ACCESS_TOKEN_LIFETIME,
    REFRESH_TOKEN_LIFETIME,
    new_refresh_token,
    refresh_token_hash,
)
from scanline.domain.users import EMAIL, check_password_length, email_key, normalise_email
from scanline.errors import Forbidden, TooManyRequests, Unauthorized
from scanline.runtime import Response, Routes, metrics
from scanline.validation import strict_object

REFRESH_TOKEN = {"type": "string", "minLength": 1, "maxLength": 512}
PASSWORD_GRANT = strict_object(
    {"grant_type": {"const": "password"},
     "username": EMAIL,
     "password": {"type": "string"}},  # length: check_password_length, never echoed
    required=["grant_type", "username", "password"],
)
REFRESH_GRANT = strict_object(
    {"grant_type": {"const": "refresh_token"}, "refresh_token": REFRESH_TOKEN},
    required=["grant_type", "refresh_token"],
)
REVOCATION = strict_object({"refresh_token": REFRESH_TOKEN}, required=["refresh_token"])
# OAuth 2.0 clients send form fields (RFC 6749 4.3, RFC 7009 2.1); JSON is accepted as well.
TOKEN_REQUEST = {"oneOf": [PASSWORD_GRANT, REFRESH_GRANT]}
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


def _form_or_json(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"application/x-www-form-urlencoded": schema, "application/json": schema}


BAD_CREDENTIALS = "the username or password is wrong"
BAD_REFRESH_TOKEN = "the refresh token is invalid, expired or revoked"
# RFC 6749 5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

routes = Routes()


def _token_response(uow: UnitOfWork, token_signer: TokenSigner, user_id: uuid.UUID,
                    family_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    refresh_token = new_refresh_token()
    uow.refresh_tokens.add(token_hash=refresh_token_hash(refresh_token), user_id=user_id,
                           family_id=family_id, now=now,
                           expires_at=now + REFRESH_TOKEN_LIFETIME)
    return {"access_token": token_signer.issue(str(user_id)), "token_type": "bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": refresh_token}


def password_grant(data: dict[str, Any], uow: UnitOfWork, passwords: PasswordHasher,
                   token_signer: TokenSigner, clock: Clock) -> dict[str, Any]:
    check_password_length(data["password"])  # before any hashing
    email = normalise_email(data["username"], field="username")
    key, now = email_key(email), clock.now()
    with uow:
        retry_after = uow.limits.blocked(LOGIN_FAILURES, key, now)
        user = uow.users.by_email(email)
    if retry_after is not None:
        raise TooManyRequests("too many failed logins for this account; try again later",
                              retry_after=retry_after)
    # Outside any transaction: hashing takes tens of milliseconds.
    stored_hash = user.password_hash if user is not None else None
    if not passwords.verify(data["password"], stored_hash) or user is None:
        with uow:
            uow.limits.hit(LOGIN_FAILURES, key, now)
        raise Unauthorized(BAD_CREDENTIALS)
    if user.verified_at is None:
        raise Forbidden("verify the email address before logging in")
    # After a change of hashing parameters, each account is upgraded at its next login.
    upgraded = (passwords.hash(data["password"])
                if passwords.needs_rehash(user.password_hash) else None)
    with uow:
        uow.limits.clear(LOGIN_FAILURES, key)
        if upgraded is not None:
            uow.users.replace_password_hash(user.id, upgraded)
        return _token_response(uow, token_signer, user.id, uuid.uuid4(), now)


def refresh_grant(data: dict[str, Any], uow: UnitOfWork, token_signer: TokenSigner,
                  clock: Clock) -> dict[str, Any]:
    now = clock.now()
    with uow:
        token = uow.refresh_tokens.lock(refresh_token_hash(data["refresh_token"]))
        if token is not None and token.rotated:
            # Reuse of a rotated token: someone else holds a copy. Kill the family (this
            # commits) and refuse.
            uow.refresh_tokens.revoke_family(token.family_id, now)
            token = None
        if token is not None and not token.revoked and token.expires_at > now:
            uow.refresh_tokens.mark_rotated(token.id, now)
            return _token_response(uow, token_signer, token.user_id, token.family_id, now)
    raise Unauthorized(BAD_REFRESH_TOKEN)


@routes.http("/", "POST", summary="Log in (password grant) or refresh the tokens",
             body=_form_or_json(TOKEN_REQUEST), responses={200: TOKENS})
def grant(body: dict[str, Any], uow: UnitOfWork, passwords: PasswordHasher,
          token_signer: TokenSigner, clock: Clock) -> Response:
    if body["grant_type"] == "password":
        with metrics.login_outcome():
            tokens = password_grant(body, uow, passwords, token_signer, clock)
    else:
        tokens = refresh_grant(body, uow, token_signer, clock)
    return Response(tokens, headers=dict(NO_STORE))


@routes.http("/revoke", "POST", summary="Revoke a refresh token and its family",
             body=_form_or_json(REVOCATION), responses={200: REVOKED})
def revoke(body: dict[str, Any], uow: UnitOfWork, clock: Clock) -> Response:
    """RFC 7009: the answer is 200 whether or not the token was valid."""
    with uow:
        token = uow.refresh_tokens.lock(refresh_token_hash(body["refresh_token"]))
        if token is not None:
            uow.refresh_tokens.revoke_family(token.family_id, clock.now())
    return Response({"status": "revoked"}, headers=dict(NO_STORE))


@routes.http("/jwks.json", "GET", responses={200: JWKS})
def jwks(token_keys: KeyRing) -> Response:
    """The public keys that verify access tokens (RFC 7517)."""
    return Response(token_keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@routes.http("/userinfo", "GET", responses={200: USERINFO}, auth=True)
def userinfo(caller: Claims, uow: UnitOfWork) -> Response:
    """The account the access token belongs to."""
    with uow:
        user = uow.users.get(caller.subject)
    if user is None:
        raise Unauthorized("the account of this token no longer exists")
    return Response({"sub": str(user.id), "name": user.name, "email": user.email,
                     "email_verified": user.verified_at is not None,
                     "created_at": user.created_at.isoformat()}, headers=dict(NO_STORE))
