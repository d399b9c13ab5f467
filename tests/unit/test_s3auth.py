"""The local S3's checks (infra.local.s3auth) against what botocore itself signs.

Each request is signed by botocore as boto3 would send it, then verified; each tampering
a client could try (another key, path, header, time, a POST outside its policy) must be
refused with S3's error code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from infra.local import s3auth
from infra.local.s3auth import Credentials, S3Refusal

CREDENTIALS = Credentials("AKIDLOCAL", "local-secret")
BOTO = BotoCredentials("AKIDLOCAL", "local-secret")
SIGNED_AT = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
HOST = "127.0.0.1:9000"


@pytest.fixture(autouse=True)
def _signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime",
                        lambda: SIGNED_AT.replace(tzinfo=None))


def header_signed(method: str, url: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Host": HOST, **(headers or {})})
    S3SigV4Auth(BOTO, "s3", "us-east-1").add_auth(request)
    parts = urlsplit(request.url)
    return parts.path, parts.query, {k.lower(): v for k, v in request.headers.items()}


def presigned(method: str, url: str, expires: int = 60) -> tuple[str, str]:
    request = AWSRequest(method=method, url=url, headers={"Host": HOST})
    S3SigV4QueryAuth(BOTO, "s3", "us-east-1", expires=expires).add_auth(request)
    parts = urlsplit(request.url)
    return parts.path, parts.query


def test_a_request_signed_by_botocore_passes_and_its_payload_hash_is_returned() -> None:
    path, query, headers = header_signed("PUT", f"http://{HOST}/bucket/a%20b.png", b"data")
    payload = s3auth.verify_headers("PUT", path, query, headers, CREDENTIALS, SIGNED_AT)
    assert payload == headers["x-amz-content-sha256"]
    assert len(payload) == 64


def test_a_signed_query_string_passes_in_any_order() -> None:
    path, query, headers = header_signed(
        "GET", f"http://{HOST}/bucket?list-type=2&prefix=up%2F&max-keys=5")
    reordered = "&".join(reversed(query.split("&")))
    s3auth.verify_headers("GET", path, reordered, headers, CREDENTIALS, SIGNED_AT)


@pytest.mark.parametrize("tamper", ["secret", "path", "header", "query", "access-key", "late",
                                    "unsigned-host", "no-auth-parts"])
def test_tampered_header_signatures_are_refused(tamper: str) -> None:
    path, query, headers = header_signed("PUT", f"http://{HOST}/bucket/mine.png", b"x",
                                         {"Content-Type": "image/png"})
    credentials, now = CREDENTIALS, SIGNED_AT
    if tamper == "secret":
        credentials = Credentials("AKIDLOCAL", "guessed")
    elif tamper == "path":
        path = "/bucket/someone-elses.png"
    elif tamper == "header":
        headers["content-type"] = "image/jpeg"
    elif tamper == "query":
        query = "acl="
    elif tamper == "access-key":
        credentials = Credentials("AKIDOTHER", "local-secret")
    elif tamper == "late":
        now = SIGNED_AT + timedelta(minutes=16)
    elif tamper == "unsigned-host":
        headers["authorization"] = headers["authorization"].replace("host;", "")
    else:
        headers["authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDLOCAL"
    with pytest.raises(S3Refusal) as refused:
        s3auth.verify_headers("PUT", path, query, headers, credentials, now)
    assert refused.value.status in (400, 403)


def test_a_presigned_url_passes_until_it_expires_and_only_for_its_object() -> None:
    path, query = presigned("GET", f"http://{HOST}/bucket/job.png", expires=60)
    headers = {"host": HOST}
    s3auth.verify_query("GET", path, query, headers, CREDENTIALS, SIGNED_AT)
    s3auth.verify_query("GET", path, query, headers, CREDENTIALS,
                        SIGNED_AT + timedelta(seconds=59))
    with pytest.raises(S3Refusal, match="expired"):
        s3auth.verify_query("GET", path, query, headers, CREDENTIALS,
                            SIGNED_AT + timedelta(seconds=61))
    with pytest.raises(S3Refusal) as other:
        s3auth.verify_query("GET", "/bucket/other.png", query, headers, CREDENTIALS, SIGNED_AT)
    assert other.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Refusal):
        s3auth.verify_query("PUT", path, query, headers, CREDENTIALS, SIGNED_AT)


def policy_fields(conditions: list[Any], *, expires: datetime | None = None,
                  secret: str = "local-secret", **fields: str) -> dict[str, str]:
    """A browser POST's fields signed the way botocore's presigned POST signs them."""
    stamp = SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")
    credential = f"AKIDLOCAL/{stamp[:8]}/us-east-1/s3/aws4_request"
    signed = {"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential,
              "x-amz-date": stamp}
    policy = {"expiration": (expires or SIGNED_AT + timedelta(minutes=15)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"),
              "conditions": [*conditions, *({k: v} for k, v in signed.items())]}
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    key = s3auth.signing_key(secret, stamp[:8], "us-east-1")
    signature = hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()
    return {**fields, **signed, "policy": encoded, "x-amz-signature": signature}


UPLOAD_POLICY = [{"bucket": "bucket"}, {"key": "up/job"}, {"Content-Type": "image/png"},
                 ["content-length-range", 1, 1000]]


def test_a_post_within_its_policy_passes_with_its_size_range() -> None:
    fields = policy_fields(UPLOAD_POLICY, key="up/job", **{"Content-Type": "image/png"})
    policy = s3auth.verify_post(fields, "bucket", CREDENTIALS, SIGNED_AT)
    assert (policy.key, policy.min_size, policy.max_size) == ("up/job", 1, 1000)
    s3auth.check_post_size(policy, 1000)
    with pytest.raises(S3Refusal) as large:
        s3auth.check_post_size(policy, 1001)
    assert large.value.code == "EntityTooLarge"
    with pytest.raises(S3Refusal) as empty:
        s3auth.check_post_size(policy, 0)
    assert empty.value.code == "EntityTooSmall"


@pytest.mark.parametrize("tamper", ["key", "type", "bucket", "extra-field", "expired",
                                    "signature", "policy-edited"])
def test_posts_outside_their_policy_are_refused(tamper: str) -> None:
    fields = policy_fields(UPLOAD_POLICY, key="up/job", **{"Content-Type": "image/png"})
    bucket, now = "bucket", SIGNED_AT
    if tamper == "key":
        fields["key"] = "up/another-job"
    elif tamper == "type":
        fields["Content-Type"] = "image/jpeg"
    elif tamper == "bucket":
        bucket = "another-bucket"
    elif tamper == "extra-field":
        fields["x-amz-meta-owner"] = "someone"
    elif tamper == "expired":
        now = SIGNED_AT + timedelta(minutes=15)
    elif tamper == "signature":
        fields = policy_fields(UPLOAD_POLICY, secret="guessed", key="up/job",
                               **{"Content-Type": "image/png"})
    else:
        policy = json.loads(base64.b64decode(fields["policy"]))
        policy["conditions"][3] = ["content-length-range", 1, 10**12]
        fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    with pytest.raises(S3Refusal) as refused:
        s3auth.verify_post(fields, bucket, CREDENTIALS, now)
    assert refused.value.status == 403


def test_starts_with_conditions_and_ignored_fields() -> None:
    conditions = [{"bucket": "bucket"}, ["starts-with", "$key", "up/"],
                  ["eq", "$Content-Type", "application/pdf"]]
    fields = policy_fields(conditions, key="up/x", **{"Content-Type": "application/pdf",
                                                      "x-ignore-note": "anything"})
    assert s3auth.verify_post(fields, "bucket", CREDENTIALS, SIGNED_AT).max_size is None
    fields["key"] = "down/x"
    with pytest.raises(S3Refusal):
        s3auth.verify_post(fields, "bucket", CREDENTIALS, SIGNED_AT)
