"""Sealed event data (scanline.sealing): only the holder of the private key reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.local.secretgen import ensure_secrets, retire_seal_keys, rotate_seal_key
from scanline.errors import DependencyUnavailable, InvalidInput
from scanline.payloads import EmailRequested
from scanline.sealing import Opener, Sealer
from scanline.secrets import SEAL_KEY, SEAL_PUBLIC_KEY

MAIL = {"to": "a@example.com", "subject": "Your code", "text": "Your code is 123456"}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    ensure_secrets([SEAL_PUBLIC_KEY], tmp_path)
    return tmp_path


def pair(directory: Path) -> tuple[Sealer, Opener]:
    return (Sealer.from_pem((directory / SEAL_PUBLIC_KEY).read_text()),
            Opener.from_pem((directory / SEAL_KEY).read_text()))


def test_sealed_data_opens_only_with_the_key_and_shows_nothing(keys: Path) -> None:
    sealer, opener = pair(keys)
    sealed = sealer.seal(EmailRequested.TYPE, MAIL)
    assert set(sealed) == {"sealed", "key"}
    assert "123456" not in json.dumps(sealed) and "a@example.com" not in json.dumps(sealed)
    assert opener.open(EmailRequested.TYPE, sealed) == MAIL
    # Sealed twice, two different ciphertexts: equal mails cannot be recognised.
    assert sealer.seal(EmailRequested.TYPE, MAIL)["sealed"] != sealed["sealed"]


def test_what_does_not_open_is_refused(keys: Path,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    sealer, opener = pair(keys)
    sealed = sealer.seal(EmailRequested.TYPE, MAIL)
    with pytest.raises(InvalidInput):  # in clear: an attacker without the public key
        opener.open(EmailRequested.TYPE, MAIL)
    with pytest.raises(InvalidInput):  # sealed as another type: the context differs
        opener.open("io.scanline.user.verified.v1", sealed)
    flipped = sealed["sealed"][:-2] + ("AA" if sealed["sealed"][-2:] != "AA" else "BB")
    with pytest.raises(InvalidInput):
        opener.open(EmailRequested.TYPE, {**sealed, "sealed": flipped})
    other = tmp_path_factory.mktemp("other")
    ensure_secrets([SEAL_PUBLIC_KEY], other)
    with pytest.raises(DependencyUnavailable, match="does not hold"):
        pair(other)[1].open(EmailRequested.TYPE, sealed)


def test_a_rotation_keeps_what_was_sealed_before_it_open(keys: Path) -> None:
    before = pair(keys)[0].seal(EmailRequested.TYPE, MAIL)
    rotate_seal_key(keys)
    sealer, opener = pair(keys)
    assert opener.open(EmailRequested.TYPE, before) == MAIL
    after = sealer.seal(EmailRequested.TYPE, MAIL)
    assert after["key"] != before["key"] and opener.open(EmailRequested.TYPE, after) == MAIL
    retire_seal_keys(keys)
    with pytest.raises(DependencyUnavailable):
        pair(keys)[1].open(EmailRequested.TYPE, before)
    assert pair(keys)[1].open(EmailRequested.TYPE, after) == MAIL
