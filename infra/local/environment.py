"""The environment a function process gets locally: stack.yml's values with local endpoints.

stack.yml names cluster hosts (``postgresql.scanline`` ...); locally every dependency listens
on 127.0.0.1, so those values are overlaid here and nowhere else. Passwords are not put in
URLs: functions read them from ``SECRETS_DIR`` exactly as they do on OpenFaaS.
"""

from __future__ import annotations

from infra.local import paths
from infra.local.stackfile import Function, Stack, load

KERAS_MODEL_DIR = paths.LOCAL / "models" / "keras-ocr"


def local_overrides() -> dict[str, str]:
    # Here, not at import: what imports this module (the gateway, the pods) needs no Pillow.
    from scanline.ocr.engines import KerasOcrEngine

    return {
        "DATABASE_URL": (f"postgresql+pg8000://{paths.DB_USER}@{paths.HOST}:"
                         f"{paths.POSTGRES_PORT}/{paths.DB_NAME}"),
        "RABBITMQ_URL": f"amqp://{paths.RABBITMQ_USER}@{paths.HOST}:{paths.RABBITMQ_PORT}/%2F",
        "S3_ENDPOINT_URL": f"http://{paths.HOST}:{paths.S3_PORT}",
        "S3_BUCKET": paths.S3_BUCKET,
        "SMTP_HOST": paths.HOST,
        "SMTP_PORT": str(paths.SMTP_PORT),
        "SMTP_STARTTLS": "false",
        "PUBLIC_URL": f"http://{paths.HOST}:{paths.GATEWAY_PORT}",
        "SECRETS_DIR": str(paths.SECRETS_DIR),
        "LOG_FORMAT": "json",
        # ocr (issue 4): keras-ocr when its weights are in this folder, tesseract otherwise
        # (the ocr function logs which at start).
        "OCR_ENGINE": "auto",
        "OCR_MODEL_DIR": str(KERAS_MODEL_DIR),
        # What a job may name: keras-ocr only where its weights are (the image bakes them
        # in; locally they are yours to add), so that ocr-jobs refuses it at the request.
        "OCR_ENGINES": "tesseract,keras-ocr" if KerasOcrEngine.weights_present(KERAS_MODEL_DIR)
        else "tesseract",
    }


def local_overrides_where_set() -> dict[str, str]:
    """Local values for settings whose mere presence means something, so they are replaced
    only in the functions whose stack.yml sets them: ``JWKS_URL`` makes a function verify
    tokens with the token function's JWKS instead of the signing key (scanline.bootstrap);
    ``JWT_ISSUER`` is what both the token function and every verifier must agree on;
    the S3 endpoint clients reach and the callback hosts are where the functions that
    use them set them."""
    gateway = f"http://{paths.HOST}:{paths.GATEWAY_PORT}"
    return {"JWKS_URL": f"{gateway}/function/token/jwks.json",
            # The issuer is where the discovery document is: the local gateway.
            "JWT_ISSUER": f"{gateway}/function/token",
            # Clients reach the local S3 where the functions do.
            "S3_PUBLIC_ENDPOINT_URL": f"http://{paths.HOST}:{paths.S3_PORT}",
            # Callbacks only to a receiver of your own on the loopback callback port.
            "OCR_CALLBACK_HOSTS": f"{paths.HOST}:{paths.CALLBACK_PORT}"}


def metrics_port(function: Function) -> int:
    """Where a function's own metrics are reachable on this machine: its port + 200
    (stack.yml's METRICS_PORT is the same for every function; pods each have their own)."""
    return function.port + 200


def function_environment(name: str, stack: Stack | None = None) -> dict[str, str]:
    """Environment for function ``name``; a name absent from stack.yml (a test) gets the base."""
    stack = stack or load()
    function = stack.functions.get(name)
    env = dict(function.environment) if function else {}
    env.update({k: v for k, v in local_overrides_where_set().items() if k in env})
    env.update(local_overrides())
    env["FUNCTION_NAME"] = name
    if function:
        env["upstream_url"] = f"http://{paths.HOST}:{function.port}"
        if "METRICS_PORT" in env:
            env["METRICS_PORT"] = str(metrics_port(function))
    return env
