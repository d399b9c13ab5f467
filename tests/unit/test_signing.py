"""Event signatures: what they cover, what survives a broker, and every way to fail."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from scanline import events
from scanline.clock import FixedClock
from scanline.events import Event, new_event
from scanline.jsontext import MAX_SAFE_INTEGER
from scanline.payloads import OcrRequested
from scanline.signing import (
    EventRejected,
    EventSigner,
    EventVerifier,
    Keyring,
    TrustedKey,
    canonical_json,
    key_id,
    source_of,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DATA = {"bucket": "scanline-uploads", "key": "uploads/u/j",
        "job_id": "5f0c6bd0-6b55-4f6a-9a52-0a0b3c5c4c1e",
        "user_id": "9d2b6c55-52b6-43a5-8d3f-67d1e0f3a0b5"}


def trusted(producer: str, key: Ed25519PrivateKey) -> TrustedKey:
    return TrustedKey(key_id(key.public_key()), producer, key.public_key())


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {"ocr-jobs": Ed25519PrivateKey.generate(), "ocr": Ed25519PrivateKey.generate()}


@pytest.fixture
def verifier(keys: dict[str, Ed25519PrivateKey]) -> EventVerifier:
    ring = Keyring(trusted(p, k) for p, k in keys.items())
    return EventVerifier(ring, FixedClock(NOW), max_age=timedelta(days=7))


def event(producer: str = "ocr-jobs", **changes: Any) -> Event:
    made = new_event(OcrRequested.TYPE, dict(DATA), source=source_of(producer),
                     subject=DATA["job_id"], time=NOW - timedelta(seconds=1))
    return dataclasses.replace(made, **changes)


def test_a_signature_survives_structured_binary_and_re_serialisation(
        keys: dict[str, Ed25519PrivateKey], verifier: EventVerifier) -> None:
    signed = EventSigner("ocr-jobs", keys["ocr-jobs"]).sign(event())
    assert verifier.verify(signed) == "ocr-jobs"
    assert verifier.verify(events.parse_structured(signed.to_structured())) == "ocr-jobs"
    headers, body = signed.to_binary()
    assert verifier.verify(events.parse_binary(headers, body)) == "ocr-jobs"
    # A broker may reorder members and rewrite trace context: neither is covered.
    reordered = events.parse_structured(signed.to_structured())
    reordered = dataclasses.replace(
        reordered, data=dict(reversed(list(reordered.data.items()))),
        extensions={**reordered.extensions, "traceparent": events.child_traceparent(None)})
    assert verifier.verify(reordered) == "ocr-jobs"


@pytest.mark.parametrize("change", [
    {"id": "another-id"}, {"source": "/functions/ocr"}, {"type": "io.scanline.other.v1"},
    {"subject": "another-job"}, {"subject": None}, {"time": NOW},
    {"datacontenttype": "text/plain"}, {"data": {**DATA, "user_id": "someone-else"}},
    {"data": {**DATA, "extra": 1}}, {"specversion": "0.3"},
])
def test_every_covered_attribute_is_protected(keys: dict[str, Ed25519PrivateKey],
                                               verifier: EventVerifier,
                                               change: dict[str, Any]) -> None:
    signed = EventSigner("ocr-jobs", keys["ocr-jobs"]).sign(event())
    with pytest.raises(EventRejected, match="signature does not match"):
        verifier.verify(dataclasses.replace(signed, **change))


def test_unsigned_and_unknown_keys_are_refused(verifier: EventVerifier) -> None:
    with pytest.raises(EventRejected, match="not signed"):
        verifier.verify(event())
    stranger = EventSigner("ocr-jobs", Ed25519PrivateKey.generate()).sign(event())
    with pytest.raises(EventRejected, match="unknown key"):
        verifier.verify(stranger)
    garbled = dataclasses.replace(stranger, extensions={
        **stranger.extensions, "keyid": verifier._keyring.document()["keys"][0]["kid"],
        "signature": "not base64 !"})
    with pytest.raises(EventRejected):
        verifier.verify(garbled)


def test_a_valid_signature_from_a_producer_not_allowed_for_the_type_is_refused(
        keys: dict[str, Ed25519PrivateKey], verifier: EventVerifier) -> None:
    forged = EventSigner("ocr", keys["ocr"]).sign(event("ocr"))
    with pytest.raises(EventRejected, match="ocr may not emit"):
        verifier.verify(forged)


def test_a_producer_cannot_sign_as_another_source(keys: dict[str, Ed25519PrivateKey]) -> None:
    with pytest.raises(ValueError):
        EventSigner("ocr", keys["ocr"]).sign(event("ocr-jobs"))


def test_time_must_lie_inside_the_replay_window(keys: dict[str, Ed25519PrivateKey],
                                                verifier: EventVerifier) -> None:
    sign = EventSigner("ocr-jobs", keys["ocr-jobs"]).sign
    assert verifier.verify(sign(event(time=NOW - timedelta(days=6, hours=23))))
    with pytest.raises(EventRejected, match="older"):
        verifier.verify(sign(event(time=NOW - timedelta(days=7, seconds=1))))
    with pytest.raises(EventRejected, match="future"):
        verifier.verify(sign(event(time=NOW + timedelta(minutes=6))))
    with pytest.raises(EventRejected, match="no time"):
        verifier.verify(sign(event(time=None)))


def test_during_a_rotation_both_keys_of_a_producer_verify() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = Keyring.from_document(Keyring([trusted("ocr-jobs", old),
                                          trusted("ocr-jobs", new)]).document())
    verifier = EventVerifier(ring, FixedClock(NOW), max_age=timedelta(days=7))
    for key in (old, new):
        assert verifier.verify(EventSigner("ocr-jobs", key).sign(event())) == "ocr-jobs"


def test_a_keyring_entry_must_be_its_keys_own_thumbprint() -> None:
    document = Keyring([trusted("ocr-jobs", Ed25519PrivateKey.generate())]).document()
    document["keys"][0]["kid"] = "someone-elses-kid"
    with pytest.raises(ValueError, match="thumbprint"):
        Keyring.from_document(document)
    with pytest.raises(ValueError):
        Keyring.from_document({"keys": [{"kty": "RSA", "producer": "x"}]})


JSON_WITHOUT_FLOATS = st.recursive(
    st.none() | st.booleans() | st.text()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), children, max_size=4),
    max_leaves=20)


@given(JSON_WITHOUT_FLOATS)
def test_the_fast_canonical_form_is_byte_for_byte_rfc_8785(document: Any) -> None:
    try:
        expected = rfc8785.dumps(document)
    except UnicodeEncodeError:  # a lone surrogate: neither form can encode it
        with pytest.raises(UnicodeEncodeError):
            canonical_json(document)
        return
    assert canonical_json(document) == expected
