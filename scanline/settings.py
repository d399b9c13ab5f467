"""Process configuration, read once from the environment.

Only non-secret values live here; secrets come from files (see ``scanline.secrets``).
Every setting name is spelled in this module and nowhere else in the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    function_name: str = "scanline"
    database_url: str = "postgresql+pg8000://scanline@127.0.0.1:5432/scanline"
    rabbitmq_url: str = "amqp://scanline@127.0.0.1:5672/%2F"
    # amqp (RabbitMQ), http (POST to K_SINK) or reply (Knative: first event in the response)
    event_sink: str = "amqp"
    k_sink: str = ""
    s3_endpoint_url: str | None = None
    # The S3 endpoint clients reach (presigned uploads are signed for it); default: the same.
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = "scanline-uploads"
    s3_region: str = "us-east-1"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_starttls: bool = False
    smtp_username: str = ""
    mail_from: str = "Scanline <no-reply@scanline.local>"
    public_url: str = "http://127.0.0.1:8080"
    secrets_dir: Path = Path("/var/openfaas/secrets")
    max_request_bytes: int = 64 * 1024
    dependency_timeout: float = 2.0
    ocr_engine: str = "tesseract"
    log_level: str = "INFO"
    # Signed events older than this are refused (scanline.signing: the replay window).
    event_max_age: int = 7 * 24 * 3600
    # Proxies whose X-Forwarded-For entries are believed (scanline.runtime.client_address):
    # the watchdog on loopback and, in a cluster, the gateway's and ingress' networks.
    trusted_proxies: str = "127.0.0.0/8,::1/128"
    # How long security events are kept (the housekeeping function deletes older ones).
    audit_retention_days: int = 90
    # How long every answer of a ``uniform_time`` operation takes (at least): above the
    # slowest honest answer (a password hash), so the kind of address never shows in it.
    uniform_answer_seconds: float = 0.5
    # The function's own Prometheus metrics (scanline.runtime.metrics); 0: not served.
    metrics_port: int = 0
    # Where traces go over OTLP/HTTP (scanline.tracing); empty: no tracing.
    otlp_endpoint: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        d = cls()
        return cls(
            function_name=env.get("FUNCTION_NAME", d.function_name),
            database_url=env.get("DATABASE_URL", d.database_url),
            rabbitmq_url=env.get("RABBITMQ_URL", d.rabbitmq_url),
            event_sink=env.get("EVENT_SINK", "http" if env.get("K_SINK") else d.event_sink),
            k_sink=env.get("K_SINK", d.k_sink),
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            s3_public_endpoint_url=env.get("S3_PUBLIC_ENDPOINT_URL") or None,
            s3_bucket=env.get("S3_BUCKET", d.s3_bucket),
            s3_region=env.get("S3_REGION", d.s3_region),
            smtp_host=env.get("SMTP_HOST", d.smtp_host),
            smtp_port=int(env.get("SMTP_PORT", d.smtp_port)),
            smtp_starttls=_flag(env.get("SMTP_STARTTLS", "false")),
            smtp_username=env.get("SMTP_USERNAME", d.smtp_username),
            mail_from=env.get("MAIL_FROM", d.mail_from),
            public_url=env.get("PUBLIC_URL", d.public_url).rstrip("/"),
            secrets_dir=Path(env.get("SECRETS_DIR", str(d.secrets_dir))),
            max_request_bytes=int(env.get("MAX_REQUEST_BYTES", d.max_request_bytes)),
            dependency_timeout=float(env.get("DEPENDENCY_TIMEOUT", d.dependency_timeout)),
            ocr_engine=env.get("OCR_ENGINE", d.ocr_engine),
            log_level=env.get("LOG_LEVEL", d.log_level),
            event_max_age=int(env.get("EVENT_MAX_AGE_SECONDS", d.event_max_age)),
            trusted_proxies=env.get("TRUSTED_PROXIES", d.trusted_proxies),
            audit_retention_days=int(env.get("AUDIT_RETENTION_DAYS", d.audit_retention_days)),
            uniform_answer_seconds=float(env.get("UNIFORM_ANSWER_SECONDS",
                                                 d.uniform_answer_seconds)),
            metrics_port=int(env.get("METRICS_PORT", d.metrics_port)),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT", d.otlp_endpoint),
            extra=env,
        )

    def get(self, name: str, default: str = "") -> str:
        """A function-specific setting (e.g. ``OTP_TTL_SECONDS``) with its default."""
        return self.extra.get(name, default)
