"""The S3 object store (MinIO in clusters, moto behind a checking front locally) through
boto3.

Two clients: one for the functions' own calls on the internal endpoint, and one that only
signs presigned uploads for the endpoint clients reach (``S3_PUBLIC_ENDPOINT_URL``; a
presigned request's signature covers its host, so it cannot be rewritten afterwards).
A presigned upload is a browser-based POST whose policy fixes the key, the media type
and the size range: S3 and MinIO refuse anything else. Reads can be pinned to the ETag
the object had when it was checked, and capped: an object that changed, or grew past the
cap, is refused without being read whole.
"""

from __future__ import annotations

from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from scanline.errors import Conflict, DependencyUnavailable, NotFound, PayloadTooLarge

_TRANSIENT = (BotoConnectionError, BotoCoreError)


class ObjectStore:
    def __init__(self, bucket: str, *, endpoint_url: str | None, access_key: str | None,
                 secret_key: str | None, region: str, timeout: float = 2.0,
                 public_endpoint_url: str | None = None) -> None:
        self.bucket = bucket

        def client(endpoint: str | None) -> Any:
            return boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region,
                aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                config=Config(connect_timeout=timeout, read_timeout=30,
                              signature_version="s3v4",
                              retries={"max_attempts": 2, "mode": "standard"},
                              s3={"addressing_style": "path"}))

        self._client = client(endpoint_url)
        self._public = client(public_endpoint_url or endpoint_url)

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"object {kwargs.get('Key')!r} does not exist") from exc
            if code.startswith("5") or code in ("SlowDown", "ServiceUnavailable"):
                raise DependencyUnavailable("s3", code) from exc
            raise
        except _TRANSIENT as exc:
            raise DependencyUnavailable("s3", repr(exc)) from exc

    def put(self, key: str, body: IO[bytes] | bytes, content_type: str) -> None:
        self._call("put_object", Key=key, Body=body, ContentType=content_type)

    def get(self, key: str, *, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with ``etag``, only if it is still that object (else
        ``Conflict``), with ``max_bytes``, only if it is no larger (else
        ``PayloadTooLarge``, decided from its length before the body is read)."""
        options = {"IfMatch": etag} if etag else {}
        try:
            response = self._call("get_object", Key=key, **options)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise Conflict(f"object {key!r} changed after it was checked") from exc
            raise
        body = response["Body"]
        try:
            if max_bytes is None:
                return body.read()
            if int(response.get("ContentLength", 0)) > max_bytes:
                raise PayloadTooLarge(f"the stored document is {response['ContentLength']} "
                                      f"bytes; the limit is {max_bytes} bytes")
            data = body.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise PayloadTooLarge(f"the stored document is over {max_bytes} bytes")
            return data
        except _TRANSIENT as exc:
            raise DependencyUnavailable("s3", repr(exc)) from exc
        finally:
            body.close()

    def head(self, key: str) -> dict[str, Any]:
        """Size and type of a stored object (``ContentLength``, ``ContentType``)."""
        return self._call("head_object", Key=key)

    def read_range(self, key: str, length: int) -> bytes:
        return self._call("get_object", Key=key, Range=f"bytes=0-{length - 1}")["Body"].read()

    def delete(self, *keys: str) -> None:
        """Delete the objects (one that is not there is fine, as in S3)."""
        if keys:
            self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in keys],
                                                 "Quiet": True})

    def presign_post(self, key: str, content_type: str, max_bytes: int,
                     expires_in: int) -> dict[str, Any]:
        """A browser-based POST upload of one object: this key, this media type, 1 to
        ``max_bytes`` bytes, until ``expires_in`` seconds from now. ``url`` and the form
        ``fields`` to send with the file (``curl -F``)."""
        try:
            return self._public.generate_presigned_post(
                self.bucket, key, ExpiresIn=expires_in, Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type},
                            ["content-length-range", 1, max_bytes]])
        except _TRANSIENT as exc:
            raise DependencyUnavailable("s3", repr(exc)) from exc

    def ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)
        except _TRANSIENT as exc:
            raise DependencyUnavailable("s3", repr(exc)) from exc

    def ping(self) -> None:
        self._call("head_bucket")
