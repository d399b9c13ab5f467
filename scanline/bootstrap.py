"""Builds each adapter once per process, on first use, and hands them to handlers.

Nothing here connects at import or construction time: a function whose servers are
not up yet still starts, answers 503 while they are down, and recovers by itself.
Tests build a ``Container`` with their own settings (and clock) instead of patching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from scanline.adapters.bus import (
    AmqpPublisher,
    HttpSinkPublisher,
    Publisher,
    ReplyPublisher,
)
from scanline.adapters.db import Database, UnitOfWork
from scanline.adapters.jwks import JwksKeys
from scanline.adapters.mail import SmtpMailer
from scanline.adapters.outbox import Outbox
from scanline.adapters.store import ObjectStore
from scanline.auth import KeyRing, PublicKeys, TokenSettings, TokenSigner, TokenVerifier
from scanline.clock import Clock, SystemClock
from scanline.events import Event, new_event
from scanline.logs import current_traceparent
from scanline.secrets import Secrets
from scanline.settings import Settings

if TYPE_CHECKING:
    from scanline.domain.passwords import PasswordHasher
    from scanline.ocr.service import OcrService

T = TypeVar("T")


class Container:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.secrets = Secrets(settings.secrets_dir)
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}

    @classmethod
    def from_env(cls) -> Container:
        return cls(Settings.from_env())

    def _once(self, name: str, factory: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = factory()
            return self._built[name]

    def _optional_secret(self, name: str) -> Callable[[], str | None]:
        return lambda: self.secrets.read(name, default="") or None

    @property
    def db(self) -> Database:
        return self._once("db", lambda: Database(
            self.settings.database_url, self._optional_secret("postgres-password"),
            timeout=self.settings.dependency_timeout))

    @property
    def publisher(self) -> Publisher:
        def build() -> Publisher:
            if self.settings.event_sink == "http":
                return HttpSinkPublisher(self.settings.k_sink)
            if self.settings.event_sink == "reply":
                return ReplyPublisher(HttpSinkPublisher(self.settings.k_sink))
            return AmqpPublisher(self.settings.rabbitmq_url,
                                 self._optional_secret("rabbitmq-password"),
                                 timeout=self.settings.dependency_timeout)
        return self._once("publisher", build)

    @property
    def outbox(self) -> Outbox:
        return self._once("outbox", lambda: Outbox(self.db, self.publisher))

    @property
    def store(self) -> ObjectStore:
        return self._once("store", lambda: ObjectStore(
            self.settings.s3_bucket, endpoint_url=self.settings.s3_endpoint_url,
            access_key=self.secrets.read("s3-access-key", default="") or None,
            secret_key=self.secrets.read("s3-secret-key", default="") or None,
            region=self.settings.s3_region, timeout=self.settings.dependency_timeout))

    @property
    def mailer(self) -> SmtpMailer:
        return self._once("mailer", lambda: SmtpMailer(
            self.settings.smtp_host, self.settings.smtp_port,
            starttls=self.settings.smtp_starttls, username=self.settings.smtp_username,
            password=self._optional_secret("smtp-password")))

    @property
    def keys(self) -> KeyRing:
        return self._once("keys", lambda: KeyRing.from_secrets(self.secrets))

    @property
    def tokens(self) -> TokenVerifier:
        """The one access-token verifier every function uses (``deps.tokens.verify``).

        Its keys come from the token function's JWKS when ``JWKS_URL`` is set — every
        function that only verifies, so none of them mounts the signing key. Without it, from
        the local key ring: that is the token function itself, which signs and so holds the
        keys anyway (and must not depend on fetching its own JWKS over the network).
        """
        def build() -> TokenVerifier:
            settings = TokenSettings.from_settings(self.settings)
            keys: PublicKeys = (JwksKeys(settings.jwks_url,
                                         timeout=self.settings.dependency_timeout)
                                if settings.jwks_url else self.keys)
            return TokenVerifier(keys, settings, self.clock)
        return self._once("tokens", build)

    @property
    def signer(self) -> TokenSigner:
        return self._once("signer", lambda: TokenSigner(
            self.keys, TokenSettings.from_settings(self.settings), self.clock))

    @property
    def passwords(self) -> PasswordHasher:
        # Imported here: only the functions that hash passwords install passlib/argon2.
        from scanline.domain.passwords import PasswordHasher

        return self._once("passwords", PasswordHasher)

    @property
    def otp_key(self) -> bytes:
        return self._once("otp_key", lambda: self.secrets.read("otp-hmac-key").encode())

    @property
    def ocr(self) -> OcrService:
        # Imported here: only the ocr function needs Pillow and the engines.
        from scanline.ocr.service import OcrService, OcrSettings

        return self._once("ocr", lambda: OcrService(OcrSettings.from_settings(self.settings)))

    @property
    def source(self) -> str:
        return f"/functions/{self.settings.function_name}"

    def event(self, type_: str, data: Any, subject: str | None = None) -> Event:
        """A new event from this function, continuing the current trace."""
        return new_event(type_, data, source=self.source, subject=subject,
                         traceparent=current_traceparent())

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """A transaction whose emitted events are published once it has committed."""
        with self.db.connect() as conn:
            work = UnitOfWork(conn)
            yield work
        if work.events:
            self.outbox.flush([e.id for e in work.events])

    def ping(self, dependency: str) -> None:
        """Raise ``DependencyUnavailable`` unless ``dependency`` answers."""
        adapter = {"db": lambda: self.db, "bus": lambda: self.publisher,
                   "store": lambda: self.store, "mail": lambda: self.mailer}[dependency]()
        adapter.ping()

    def close(self) -> None:
        with self._lock:
            built, self._built = self._built, {}
        if "outbox" in built:
            built["outbox"].stop()
        if "publisher" in built:
            built["publisher"].close()
        if "db" in built:
            built["db"].dispose()
