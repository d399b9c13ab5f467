"""Builds each adapter once per process, on first use, and hands them to handlers by name.

Nothing here connects at import or construction time: a function whose servers are
not up yet still starts, answers 503 while they are down, and recovers by itself.
``PROVIDERS`` is the list of names a view may take as parameters (see
``scanline.runtime.injection``), each with the readiness checks it implies.
Tests build a ``Container`` with their own settings (and clock) instead of patching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from scanline.adapters.bus import (
    AmqpPublisher,
    HttpSinkPublisher,
    Publisher,
    ReplyPublisher,
)
from scanline.adapters.callback_sender import CallbackSender
from scanline.adapters.db import Database
from scanline.adapters.job_watch import JobWatch
from scanline.adapters.jwks import JwksKeys
from scanline.adapters.mail import SmtpMailer
from scanline.adapters.ocr_jobs_repository import OcrJobs
from scanline.adapters.outbox import Outbox
from scanline.adapters.revocations import RevocationList
from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import Emitter, UnitOfWork
from scanline.auth import KeyRing, PublicKeys, TokenSettings, TokenSigner, TokenVerifier
from scanline.clock import Clock, SystemClock
from scanline.domain.job_policy import JobPolicy
from scanline.errors import DependencyUnavailable
from scanline.events import Event, new_event
from scanline.logs import current_traceparent
from scanline.payloads import Payload
from scanline.sealing import Opener, Sealer
from scanline.secrets import EVENT_KEYRING, SEAL_KEY, SEAL_PUBLIC_KEY, Secrets, event_key_secret
from scanline.settings import Settings
from scanline.signing import EventSigner, EventVerifier, Keyring, source_of

if TYPE_CHECKING:
    from scanline.domain.password_policy import BreachedPasswords
    from scanline.domain.passwords import PasswordHasher
    from scanline.ocr.service import OcrService, OcrSettings

T = TypeVar("T")


class Container:
    def __init__(self, settings: Settings, clock: Clock | None = None, *,
                 replace: dict[str, Any] | None = None) -> None:
        """``replace`` puts given objects in place of adapters by their name (as nameko's
        ``replace_dependencies``): a unit test of pure logic swaps one adapter, never
        patches."""
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.secrets = Secrets(settings.secrets_dir)
        self._lock = threading.RLock()
        self._built: dict[str, Any] = dict(replace or {})

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
            region=self.settings.s3_region, timeout=self.settings.dependency_timeout,
            public_endpoint_url=self.settings.s3_public_endpoint_url))

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
            return TokenVerifier(keys, settings, self.clock, self.revocations)
        return self._once("tokens", build)

    @property
    def revocations(self) -> RevocationList:
        """The sessions that ended, as this process's token verifier sees them."""
        return self._once("revocations", lambda: RevocationList(self.db, self.clock))

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
    def breached_passwords(self) -> BreachedPasswords:
        from scanline.domain.password_policy import BreachedPasswords

        return self._once("breached_passwords", BreachedPasswords)

    @property
    def otp_key(self) -> bytes:
        return self._once("otp_key", lambda: self.secrets.read("otp-hmac-key").encode())

    @property
    def refresh_key(self) -> bytes:
        return self._once("refresh_key",
                          lambda: self.secrets.read("refresh-token-key").encode())

    @property
    def ocr(self) -> OcrService:
        # Imported here: only the ocr function needs Pillow and the engines.
        from scanline.ocr.service import OcrService

        return self._once("ocr", lambda: OcrService(self.ocr_settings))

    @property
    def job_policy(self) -> JobPolicy:
        return self._once("job_policy", lambda: JobPolicy.from_settings(self.settings))

    @property
    def job_watch(self) -> JobWatch:
        return self._once("job_watch", lambda: JobWatch(
            self.unit_of_work, lambda: self.db.listener(OcrJobs.ENDED),
            per_user=self.job_policy.waits_per_user,
            per_process=self.job_policy.waits_per_process))

    @property
    def callback_sender(self) -> CallbackSender:
        return self._once("callback_sender", lambda: CallbackSender(
            self.unit_of_work, self.job_policy, self.clock))

    @property
    def ocr_settings(self) -> OcrSettings:
        from scanline.ocr.service import OcrSettings

        return self._once("ocr_settings", lambda: OcrSettings.from_settings(self.settings))

    def _key_material(self, secret: str, parse: Callable[[str], T]) -> T:
        """A key read from ``secret``; unreadable key material is a deployment mistake
        answered 503 (events are retried until it is fixed), never a 500."""
        try:
            return parse(self.secrets.read(secret))
        except ValueError as exc:
            raise DependencyUnavailable("secrets", f"secret {secret!r}: {exc}") from None

    @property
    def event_signer(self) -> EventSigner:
        name = event_key_secret(self.settings.function_name)
        return self._once("event_signer", lambda: self._key_material(
            name, lambda pem: EventSigner.from_pem(self.settings.function_name, pem)))

    @property
    def event_keyring(self) -> Keyring:
        return self._once("event_keyring", lambda: self._key_material(EVENT_KEYRING,
                                                                      Keyring.from_json))

    @property
    def event_verifier(self) -> EventVerifier:
        return self._once("event_verifier", lambda: EventVerifier(
            self.event_keyring, self.clock,
            max_age=timedelta(seconds=self.settings.event_max_age)))

    @property
    def sealer(self) -> Sealer:
        return self._once("sealer", lambda: self._key_material(SEAL_PUBLIC_KEY,
                                                               Sealer.from_pem))

    @property
    def opener(self) -> Opener:
        return self._once("opener", lambda: self._key_material(SEAL_KEY, Opener.from_pem))

    def _signed_event(self, payload: Payload, subject: str | None) -> Event:
        producer = self.settings.function_name
        if producer not in payload.PRODUCERS:
            raise RuntimeError(f"{producer} may not emit {payload.TYPE} (scanline.payloads)")
        data = payload.to_data()
        if payload.SEALED:
            data = self.sealer.seal(payload.TYPE, data)
        return self.event_signer.sign(new_event(
            payload.TYPE, data, source=source_of(producer), time=self.clock.now(),
            subject=subject, traceparent=current_traceparent()))

    def unit_of_work(self, emits: Sequence[type[Payload]] = ()) -> UnitOfWork:
        """A fresh unit of work for one invocation that may emit ``emits``."""
        return UnitOfWork(
            self.db, consumer=self.settings.function_name,
            emitter=Emitter(self.settings.function_name, self._signed_event) if emits else None,
            emits=emits, published=self.outbox.flush if emits else lambda ids: None)

    def ping(self, dependency: str) -> None:
        """Raise ``DependencyUnavailable`` unless ``dependency`` answers."""
        if dependency == "event-signing-key":
            self.event_signer  # noqa: B018 (reading and parsing the key is the check)
            return
        if dependency == "event-keyring":
            self.event_verifier  # noqa: B018
            return
        if dependency == "seal-key":
            self.opener  # noqa: B018
            return
        if dependency == "seal-public-key":
            self.sealer  # noqa: B018
            return
        adapter = {"db": lambda: self.db, "bus": lambda: self.publisher,
                   "store": lambda: self.store, "mail": lambda: self.mailer}[dependency]()
        adapter.ping()

    def close(self) -> None:
        with self._lock:
            built, self._built = self._built, {}
        if "outbox" in built:
            built["outbox"].stop()
        if "callback_sender" in built:
            built["callback_sender"].stop()
        if "publisher" in built:
            built["publisher"].close()
        if "db" in built:
            built["db"].dispose()


@dataclass(frozen=True)
class Provider:
    """A dependency a view can take by name, what ``/_/ready`` must check if it does, and
    what to start at start-up (loading data, never connecting) so the first request does
    not pay for it."""

    get: Callable[[Container], Any]
    needs: tuple[str, ...] = ()
    warm: Callable[[Any], None] | None = None


PROVIDERS: dict[str, Provider] = {
    "clock": Provider(lambda c: c.clock),
    "settings": Provider(lambda c: c.settings),
    "store": Provider(lambda c: c.store, ("store",)),
    "mailer": Provider(lambda c: c.mailer, ("mail",)),
    "passwords": Provider(lambda c: c.passwords),
    "breached_passwords": Provider(lambda c: c.breached_passwords,
                                   warm=lambda passwords: passwords.preload()),
    "revocations": Provider(lambda c: c.revocations, ("db",)),
    "otp_key": Provider(lambda c: c.otp_key),
    "refresh_key": Provider(lambda c: c.refresh_key),
    "token_signer": Provider(lambda c: c.signer),
    "token_keys": Provider(lambda c: c.keys),
    "ocr_service": Provider(lambda c: c.ocr),
    "ocr_settings": Provider(lambda c: c.ocr_settings),
    "job_policy": Provider(lambda c: c.job_policy),
    "job_watch": Provider(lambda c: c.job_watch, ("db",)),
    "callback_sender": Provider(lambda c: c.callback_sender, ("db",)),
    "event_keyring": Provider(lambda c: c.event_keyring, ("event-keyring",)),
}
