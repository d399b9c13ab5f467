"""The S3 object store (MinIO in clusters, moto locally) through boto3."""

from __future__ import annotations

from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from scanline.errors import DependencyUnavailable, NotFound

_TRANSIENT = (BotoConnectionError, BotoCoreError)


class ObjectStore:
    def __init__(self, bucket: str, *, endpoint_url: str | None, access_key: str | None,
                 secret_key: str | None, region: str, timeout: float = 2.0) -> None:
        self.bucket = bucket
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(connect_timeout=timeout, read_timeout=30, signature_version="s3v4",
                          retries={"max_attempts": 2, "mode": "standard"},
                          s3={"addressing_style": "path"}))

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

    def get(self, key: str) -> bytes:
        return self._call("get_object", Key=key)["Body"].read()

    def head(self, key: str) -> dict[str, Any]:
        """Size and type of a stored object (``ContentLength``, ``ContentType``)."""
        return self._call("head_object", Key=key)

    def read_range(self, key: str, length: int) -> bytes:
        return self._call("get_object", Key=key, Range=f"bytes=0-{length - 1}")["Body"].read()

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=key)

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        try:
            return self._client.generate_presigned_url(
                "put_object", ExpiresIn=expires_in,
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type})
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
