"""moto's S3 server with the uploads bucket already in it.

moto keeps everything in memory, so a restarted server has no bucket; creating the bucket
in the same process before reporting ready means supervisord's crash restart brings back a
usable S3 instead of one that answers NoSuchBucket.
"""

from __future__ import annotations

import logging
import signal
import threading

import boto3
from moto.server import ThreadedMotoServer

from infra.local import paths
from infra.local.secretgen import read_secret
from scanline.logs import configure as configure_logging

log = logging.getLogger("s3")


def create_bucket(endpoint: str, bucket: str = paths.S3_BUCKET) -> None:
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=read_secret("s3-access-key"),
        aws_secret_access_key=read_secret("s3-secret-key"))
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def main() -> None:
    configure_logging("s3")
    server = ThreadedMotoServer(ip_address=paths.HOST, port=paths.S3_PORT, verbose=False)
    server.start()
    endpoint = f"http://{paths.HOST}:{paths.S3_PORT}"
    create_bucket(endpoint)
    log.info("listening", extra={"endpoint": endpoint, "bucket": paths.S3_BUCKET})
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
