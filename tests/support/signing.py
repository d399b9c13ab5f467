"""Tests that play a producer sign what they publish, as that producer would.

By default with the producer's own key from the running stack's secrets
(``.local/secrets/event-key-<producer>``), so an event a test publishes is exactly what the
function would have emitted; ``producer_keys`` makes a separate key and keyring for a
test's own function (the fault suite's), which the stack's functions do not trust. Data
of a sealed type is sealed with the stack's sealing key first (``sealed=False`` sends it
in clear, as an attacker without the key would), and ``opened`` reads what a tap saw.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

from infra.local.secretgen import ensure_secrets
from scanline.events import Event, new_event
from scanline.payloads import REGISTRY, Payload
from scanline.sealing import Opener, Sealer
from scanline.secrets import EVENT_KEYRING, SEAL_KEY, SEAL_PUBLIC_KEY, Secrets, event_key_secret
from scanline.signing import EventSigner, source_of
from tests.support.stack import LOCAL

STACK_SECRETS = LOCAL / "secrets"


@cache
def signer(producer: str, secrets_dir: Path = STACK_SECRETS) -> EventSigner:
    return EventSigner.from_pem(producer, Secrets(secrets_dir).read(event_key_secret(producer)))


def sign(event: Event, producer: str, secrets_dir: Path = STACK_SECRETS) -> Event:
    return signer(producer, secrets_dir).sign(event)


def signed_data(type_: str, data: Any, producer: str, *, subject: str | None = None,
                secrets_dir: Path = STACK_SECRETS, sealed: bool = True,
                **changes: Any) -> Event:
    """An event of any type and data (also data its type would refuse), signed."""
    payload = REGISTRY.get(type_)
    if sealed and payload is not None and payload.SEALED:
        data = sealer(secrets_dir).seal(type_, data)
    event = new_event(type_, data, source=source_of(producer), subject=subject)
    return sign(dataclasses.replace(event, **changes), producer, secrets_dir)


@cache
def sealer(secrets_dir: Path = STACK_SECRETS) -> Sealer:
    ensure_secrets([SEAL_PUBLIC_KEY], secrets_dir)
    return Sealer.from_pem(Secrets(secrets_dir).read(SEAL_PUBLIC_KEY))


def opened(event: Event, secrets_dir: Path = STACK_SECRETS) -> Event:
    """``event`` with its sealed data opened (any other event as it is)."""
    payload = REGISTRY.get(event.type)
    if payload is None or not payload.SEALED or not isinstance(event.data, dict) \
            or "sealed" not in event.data:
        return event
    opener = Opener.from_pem(Secrets(secrets_dir).read(SEAL_KEY))
    return dataclasses.replace(event, data=opener.open(event.type, event.data))


def signed(payload: Payload, producer: str | None = None, **options: Any) -> Event:
    """``payload`` as ``producer`` (default: the first allowed one) would emit it."""
    return signed_data(payload.TYPE, payload.to_data(),
                       producer or sorted(payload.PRODUCERS)[0], **options)


def producer_keys(directory: Path, producer: str) -> Path:
    """A signing key for ``producer`` and a keyring trusting only it (and sealing keys),
    in ``directory``."""
    ensure_secrets([event_key_secret(producer), EVENT_KEYRING, SEAL_PUBLIC_KEY], directory)
    return directory
