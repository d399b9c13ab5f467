"""What S3 checks before it touches an object, for the local S3 server (``s3server``).

moto, the local S3, accepts any request: unsigned, badly signed, presigned for another
object or long expired, and a browser POST whatever its policy says. Real S3 and MinIO
refuse all of those, so a local stack built on moto alone would hide every defect that
depends on them (an upload over its declared size, a URL reused for another key). These
are the checks of AWS Signature Version 4 that the server applies in front of moto:

- ``Authorization: AWS4-HMAC-SHA256 …`` headers (what boto3 sends), with the clock skew
  S3 allows and the payload hash checked against the body;
- presigned URLs (``X-Amz-Signature`` in the query), until ``X-Amz-Expires`` runs out;
- browser-based POST uploads: the policy's signature, its expiry and every condition
  (``eq``, ``starts-with``, ``content-length-range``), and every form field covered by one.

Refusals carry S3's own error codes so clients react as they would to S3.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                     "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                     "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$")
# Form fields a POST policy need not name (the S3 rule).
_UNCONDITIONED = {"policy", "x-amz-signature", "file"}


class S3Refusal(Exception):
    """A request S3 would refuse: its HTTP status, S3 error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _parse_time(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise S3Refusal(403, "AccessDenied", f"X-Amz-Date {value!r} is not a date") from None


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str, *, without: str | None = None) -> str:
    pairs = [(_encode(k), _encode(v)) for k, v in parse_qsl(query, keep_blank_values=True)
             if k != without]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method: str, raw_path: str, query: str, headers: Mapping[str, str],
                      signed: list[str], payload_hash: str, *, without: str | None = None) -> str:
    missing = [name for name in signed if name not in headers]
    if missing:
        raise S3Refusal(403, "SignatureDoesNotMatch",
                        f"signed headers missing from the request: {', '.join(missing)}")
    lines = [f"{name}:{' '.join(headers[name].split())}" for name in signed]
    return "\n".join([method.upper(), raw_path, canonical_query(query, without=without),
                      "\n".join(lines) + "\n", ";".join(signed), payload_hash])


def _signature(credentials: Credentials, stamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    text = "\n".join([ALGORITHM, stamp, scope, digest])
    key = signing_key(credentials.secret_key, stamp[:8], credentials.region)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _check_scope(credential: str, stamp: str, credentials: Credentials) -> str:
    """The scope ``day/region/s3/aws4_request`` of ``access-key/scope``, checked."""
    access_key, _, scope = credential.partition("/")
    if not hmac.compare_digest(access_key, credentials.access_key):
        raise S3Refusal(403, "InvalidAccessKeyId",
                        "The AWS Access Key Id you provided does not exist in our records.")
    expected = f"{stamp[:8]}/{credentials.region}/{SERVICE}/aws4_request"
    if scope != expected:
        raise S3Refusal(403, "SignatureDoesNotMatch",
                        f"credential scope {scope!r} is not {expected!r}")
    return scope


def _compare(given: str, expected: str) -> None:
    if not hmac.compare_digest(given, expected):
        raise S3Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated "
                        "does not match the signature you provided.")


def verify_headers(method: str, raw_path: str, query: str, headers: Mapping[str, str],
                   credentials: Credentials, now: datetime) -> str:
    """Check an ``Authorization`` header; returns the payload hash the body must match
    (or one of ``UNSIGNED_PAYLOADS``)."""
    match = _AUTHORIZATION.match(headers.get("authorization", "").strip())
    if match is None:
        raise S3Refusal(400, "AuthorizationHeaderMalformed",
                        "The authorization header is malformed.")
    stamp = headers.get("x-amz-date", "")
    sent = _parse_time(stamp)
    if abs(now - sent) > MAX_SKEW:
        raise S3Refusal(403, "RequestTimeTooSkewed", "The difference between the request "
                        "time and the current time is too large.")
    payload = headers.get("x-amz-content-sha256", "")
    if not (_HEX_SHA256.match(payload) or payload in UNSIGNED_PAYLOADS):
        raise S3Refusal(400, "InvalidRequest", "Missing or invalid x-amz-content-sha256.")
    signed = match["signed"].split(";")
    if "host" not in signed:
        raise S3Refusal(403, "AccessDenied", "the host header must be signed")
    scope = _check_scope(match["credential"], stamp, credentials)
    canonical = canonical_request(method, raw_path, query, headers, signed, payload)
    _compare(match["signature"], _signature(credentials, stamp, scope, canonical))
    return payload


def verify_query(method: str, raw_path: str, query: str, headers: Mapping[str, str],
                 credentials: Credentials, now: datetime) -> None:
    """Check a presigned URL: its signature, and that it has not expired."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise S3Refusal(400, "AuthorizationQueryParametersError",
                        "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    stamp = params.get("X-Amz-Date", "")
    sent = _parse_time(stamp)
    try:
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise S3Refusal(400, "AuthorizationQueryParametersError",
                        "X-Amz-Expires should be a number") from None
    if not 1 <= expires <= MAX_PRESIGNED_SECONDS:
        raise S3Refusal(400, "AuthorizationQueryParametersError",
                        "X-Amz-Expires must be between 1 and 604800 seconds")
    if now > sent + timedelta(seconds=expires):
        raise S3Refusal(403, "AccessDenied", "Request has expired")
    if sent - now > MAX_SKEW:
        raise S3Refusal(403, "RequestTimeTooSkewed", "The request is signed in the future.")
    signed = params.get("X-Amz-SignedHeaders", "").split(";")
    if "host" not in signed:
        raise S3Refusal(403, "AccessDenied", "the host header must be signed")
    scope = _check_scope(params.get("X-Amz-Credential", ""), stamp, credentials)
    canonical = canonical_request(method, raw_path, query, headers, signed,
                                  "UNSIGNED-PAYLOAD", without="X-Amz-Signature")
    _compare(params.get("X-Amz-Signature", ""), _signature(credentials, stamp, scope, canonical))


@dataclass(frozen=True)
class PostPolicy:
    """What a verified browser POST may store: the key, and the size range of the file."""

    key: str
    min_size: int
    max_size: int | None


def verify_post(fields: Mapping[str, str], bucket: str, credentials: Credentials,
                now: datetime) -> PostPolicy:
    """Check a browser-based POST upload's form fields (names compared case-insensitively,
    as S3 does) against its signed policy."""
    form = {name.lower(): value for name, value in fields.items()}
    for needed in ("key", "policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
                   "x-amz-signature"):
        if needed not in form:
            raise S3Refusal(400, "InvalidArgument", f"POST requires the form field {needed}")
    if form["x-amz-algorithm"] != ALGORITHM:
        raise S3Refusal(400, "InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256")
    stamp = form["x-amz-date"]
    _parse_time(stamp)
    _check_scope(form["x-amz-credential"], stamp, credentials)
    key = signing_key(credentials.secret_key, stamp[:8], credentials.region)
    _compare(form["x-amz-signature"],
             hmac.new(key, form["policy"].encode(), hashlib.sha256).hexdigest())
    try:
        policy = json.loads(base64.b64decode(form["policy"], validate=True))
        expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        conditions = policy["conditions"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise S3Refusal(400, "InvalidPolicyDocument", "Invalid Policy: malformed") from None
    if now >= expiration:
        raise S3Refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = {**form, "bucket": bucket}
    covered: set[str] = set()
    sizes: tuple[int, int | None] = (0, None)
    for condition in conditions:
        if isinstance(condition, list) and condition and condition[0] == "content-length-range":
            sizes = (int(condition[1]), int(condition[2]))
            continue
        name, test = _condition(condition)
        covered.add(name)
        if not test(values.get(name, "")):
            raise S3Refusal(403, "AccessDenied", "Invalid according to Policy: Policy "
                            f"Condition failed: {json.dumps(condition)}")
    loose = {n for n in form if n not in covered and n not in _UNCONDITIONED
             and not n.startswith("x-ignore-")}
    if loose:
        raise S3Refusal(403, "AccessDenied", "Invalid according to Policy: Extra input "
                        f"fields: {', '.join(sorted(loose))}")
    return PostPolicy(form["key"], *sizes)


def _condition(condition: Any) -> tuple[str, Any]:
    """A policy condition as (field name, test of the field's value)."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, expected),) = condition.items()
        return name.lower(), lambda value: value == expected
    if isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq",
                                                                                "starts-with"):
        operator, name, expected = condition
        if not isinstance(name, str) or not name.startswith("$"):
            raise S3Refusal(400, "InvalidPolicyDocument", f"Invalid condition {condition}")
        if operator == "eq":
            return name[1:].lower(), lambda value: value == expected
        return name[1:].lower(), lambda value: value.startswith(expected)
    raise S3Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: condition {condition}")


def check_post_size(policy: PostPolicy, size: int) -> None:
    if size < policy.min_size:
        raise S3Refusal(400, "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size")
    if policy.max_size is not None and size > policy.max_size:
        raise S3Refusal(400, "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size")
