"""Pure account rules: addresses, password policy and hashing, OTPs, limits, token claims."""

from __future__ import annotations

import re
import time
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scanline.domain import otp, password_policy, registrations
from scanline.domain.password_policy import PASSWORD_MAX, BreachedPasswords
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import (
    CODE_GUESSES,
    LOGIN_FAILURES_PER_PAIR,
    OTP_RESEND,
    Limit,
    Throttle,
    ThrottleState,
)
from scanline.domain.registrations import Registration
from scanline.domain.tokens import (
    REUSE_GRACE,
    access_claims,
    new_refresh_token,
    refresh_expiry,
    refresh_token_hash,
    successor_of,
    within_grace,
)
from scanline.domain.users import client_key, email_key, normalise_email, pair_key
from scanline.errors import DependencyUnavailable, InvalidInput

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


# ---- addresses -------------------------------------------------------------------------

def test_addresses_differing_only_in_case_are_one_account() -> None:
    assert normalise_email("Alice@X.com") == normalise_email("alice@x.com") == "alice@x.com"
    assert normalise_email("  ALICE@Example.COM ".strip()) == "alice@example.com"


def test_internationalised_domain_is_normalised() -> None:
    assert normalise_email("bob@BÜCHER.example") == "bob@bücher.example"


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b", "a@@b.com", "a b@c.com",
                                 "x" * 300 + "@example.com"])
def test_malformed_addresses_are_invalid_input(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_email(raw)
    assert caught.value.errors and caught.value.errors[0]["pointer"] == "/email"


def test_email_key_is_stable_and_does_not_contain_the_address() -> None:
    assert email_key("a@x.com") == email_key("a@x.com") != email_key("b@x.com")
    assert "a@x.com" not in email_key("a@x.com")


# ---- password policy -------------------------------------------------------------------

@pytest.fixture(scope="module")
def breached() -> BreachedPasswords:
    return BreachedPasswords()


def check(password: str, breached: BreachedPasswords, email: str = "ann.lee@example.com",
          name: str = "Ann Lee") -> None:
    password_policy.check(password_policy.normalise(password), email=email, name=name,
                          breached=breached)


@pytest.mark.parametrize("password", ["P@ssw0rd", "aaaaaaaa", "password", "PASSWORD",
                                      "12345678", "iloveyou", "trustno1", "Password1",
                                      "qwertyuiop",
                                      # listed ones dressed at their ends
                                      "password123456", "Password123!", "iloveyou12345",
                                      "!!dragon2024"])
def test_common_and_breached_passwords_are_refused_whatever_their_case(
        password: str, breached: BreachedPasswords) -> None:
    with pytest.raises(InvalidInput) as refused:
        check(password, breached)
    assert "breached" in refused.value.errors[0]["detail"]
    assert password not in refused.value.errors[0]["detail"].split()  # never quoted back


def test_the_shipped_list_has_at_least_100_000_passwords(breached: BreachedPasswords) -> None:
    assert len(breached) >= 100_000


@pytest.mark.parametrize("password", ["scanline123", "MyScanLine!", "ann.lee@example.com",
                                      "ann.lee-2026", "Ann Lee 2026!", "ANNLEE42!!"])
def test_context_words_are_refused(password: str, breached: BreachedPasswords) -> None:
    with pytest.raises(InvalidInput) as refused:
        check(password, breached)
    assert "address" in refused.value.errors[0]["detail"]


def test_a_password_that_mentions_a_word_of_the_name_is_no_context_word(
        breached: BreachedPasswords) -> None:
    check("Lee's quiet garden at noon", breached)


@pytest.mark.parametrize("password", ["short1!", "x" * (PASSWORD_MAX + 1), "x" * 10_000])
def test_length_is_8_to_256_characters(password: str, breached: BreachedPasswords) -> None:
    with pytest.raises(InvalidInput) as caught:
        check(password, breached)
    assert "characters" in caught.value.errors[0]["detail"]


@pytest.mark.parametrize("password", ["correct horse battery staple", "x" * PASSWORD_MAX,
                                      "Zürich-Straße-42", "🔑🔑🔑🔑🔑🔑🔑🔑"])
def test_long_uncommon_passwords_of_any_characters_are_accepted(
        password: str, breached: BreachedPasswords) -> None:
    check(password, breached)


def test_a_password_is_the_same_whichever_unicode_form_it_is_typed_in() -> None:
    nfc = "Grüße aus Köln 42"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert password_policy.normalise(nfc) == password_policy.normalise(nfd)
    fullwidth = "".join(chr(0xFEE0 + ord(c)) for c in "fullwidth")  # U+FF46 ...
    assert password_policy.normalise(fullwidth) == "fullwidth"  # compatibility forms too


def test_the_check_fails_closed_without_its_list(tmp_path: Path) -> None:
    missing = BreachedPasswords(tmp_path / "absent.txt.gz")
    with pytest.raises(DependencyUnavailable):
        password_policy.check("correct horse battery staple", email="a@b.example",
                              breached=missing)


# ---- hashing ---------------------------------------------------------------------------

def test_hash_is_argon2id_at_least_owasp_minimum(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    m, t, p = map(int, re.search(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored).groups())
    assert m >= 19 * 1024 and t >= 2 and p >= 1
    assert hasher.verify("correct horse battery staple", stored)
    assert not hasher.verify("correct horse battery stapler", stored)
    assert not hasher.needs_rehash(stored)


def test_weaker_stored_hash_needs_rehash(hasher: PasswordHasher) -> None:
    weak = PasswordHasher(memory_kib=8192, time_cost=1)
    assert hasher.needs_rehash(weak.hash("correct horse battery staple"))


def test_at_most_one_hash_per_slot_at_a_time() -> None:
    import threading

    hasher = PasswordHasher(memory_kib=8192, time_cost=1, concurrency=1)
    running, peak, lock = [0], [0], threading.Lock()
    original = hasher._scheme

    class Probe:
        def hash(self, password: str) -> str:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1
            return original.hash(password)

    hasher._scheme = Probe()  # type: ignore[assignment]
    threads = [threading.Thread(target=hasher.hash, args=("x" * 10,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1


def test_unknown_account_costs_as_much_as_a_wrong_password(hasher: PasswordHasher) -> None:
    """Structural, not timed: an unknown account runs one full verification against a
    hash made with the very same parameters as a real one."""
    stored = hasher.hash("correct horse battery staple")
    checked: list[str] = []
    scheme = hasher._scheme
    real_verify = scheme.verify

    def counting(password: str, against: str) -> bool:
        checked.append(against)
        return bool(real_verify(password, against))

    scheme.verify = counting  # type: ignore[method-assign]
    try:
        assert not hasher.verify("wrong password!", None)
        assert not hasher.verify("wrong password!", stored)
    finally:
        del scheme.verify
    dummy, real = checked
    assert dummy != real and not hasher.needs_rehash(dummy)
    assert dummy.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]  # $argon2id$v=19$m=…,t=…,p=…


# ---- codes and registrations --------------------------------------------------------

def test_codes_are_six_random_digits() -> None:
    codes = {otp.generate() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes)
    assert len(codes) > 190


def test_digest_is_keyed_and_bound_to_what_it_opens() -> None:
    d = otp.digest(KEY, "r1", "123456")
    assert len(d) == 32 and b"123456" not in d
    assert d != otp.digest(KEY, "r2", "123456")
    assert d != otp.digest(b"j" * 32, "r1", "123456")
    assert otp.matches(d, KEY, "r1", "123456")
    assert not otp.matches(d, KEY, "r2", "123456") and not otp.matches(None, KEY, "r1", "x")


def registration(code: str, legacy: bool = False) -> Registration:
    rid = uuid.uuid4()
    return Registration(id=rid, email="a@b.example", name="A", password_hash="h",
                        code_digest=otp.digest(KEY, str(rid), code),
                        code_expires_at=NOW + timedelta(minutes=5), legacy=legacy)


def test_a_code_opens_only_the_registration_it_was_mailed_for() -> None:
    strangers, owners = registration("111111"), registration("222222")
    assert registrations.opened_by([strangers, owners], KEY, "222222") == owners
    assert registrations.opened_by([strangers, owners], KEY, "111111") == strangers
    assert registrations.opened_by([strangers, owners], KEY, "333333") is None
    assert registrations.opened_by([], KEY, "222222") is None


def test_code_and_registration_lifetimes() -> None:
    assert otp.expiry(NOW) - NOW == timedelta(minutes=10)
    assert registrations.expiry(NOW) - NOW == timedelta(hours=24)


# ---- limits ----------------------------------------------------------------------------

def test_limit_allows_until_reached_then_tells_when_to_retry() -> None:
    limit = Limit("t", allowed=2, window=timedelta(seconds=60))
    assert limit.retry_after(NOW, 1, NOW) is None
    assert limit.retry_after(NOW, 2, NOW + timedelta(seconds=15)) == 45
    assert limit.retry_after(NOW, 2, NOW + timedelta(seconds=59.5)) == 1
    assert limit.retry_after(NOW, 99, NOW + timedelta(seconds=60)) is None


def test_configured_limits() -> None:
    assert (OTP_RESEND.allowed, OTP_RESEND.window) == (1, timedelta(seconds=60))
    assert (CODE_GUESSES.allowed, CODE_GUESSES.window) == (20, timedelta(days=1))


def test_a_throttle_delays_progressively_after_the_free_failures() -> None:
    throttle = Throttle("t", free=5, cap=timedelta(minutes=15))
    state, waits = ThrottleState(), []
    for _ in range(16):
        assert throttle.wait(state, NOW) is None or state.blocked_until
        state = throttle.failed(state, NOW)
        waits.append(throttle.wait(state, NOW))
    assert waits[:4] == [None] * 4  # five attempts without a wait
    assert waits[4:11] == [1, 2, 4, 8, 16, 32, 64]
    assert waits[-1] == 900  # capped
    assert throttle.wait(state, NOW + timedelta(minutes=16)) is None


def test_login_throttles_are_kept_per_pair_not_per_account() -> None:
    assert LOGIN_FAILURES_PER_PAIR.free >= 5
    a = "a@b.example"
    assert pair_key(a, "10.0.0.1") != pair_key(a, "10.0.0.2")
    assert client_key("10.0.0.1") != email_key("10.0.0.1")
    assert "10.0.0.1" not in pair_key(a, "10.0.0.1") + client_key("10.0.0.1")


# ---- tokens ----------------------------------------------------------------------------

def test_access_claims_name_the_session_carry_no_personal_data_and_expire_in_15_minutes(
        ) -> None:
    claims = access_claims("user-1", "session-1", issuer="iss", audience="aud", now=NOW)
    assert set(claims) == {"sub", "sid", "iss", "aud", "iat", "nbf", "exp", "jti"}
    assert claims["sid"] == "session-1"
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    again = access_claims("user-1", "session-1", issuer="iss", audience="aud", now=NOW)
    assert claims["jti"] != again["jti"]


def test_refresh_tokens_are_random_stored_as_a_hash_and_never_outlive_their_session() -> None:
    token = new_refresh_token()
    assert len(token) >= 43 and token != new_refresh_token()
    assert refresh_token_hash(token) == refresh_token_hash(token)
    assert token.encode() not in refresh_token_hash(token)
    assert refresh_expiry(NOW, NOW + timedelta(days=2)) == NOW + timedelta(days=2)


def test_reuse_within_the_grace_is_a_concurrent_refresh() -> None:
    assert within_grace(NOW, NOW + REUSE_GRACE)
    assert not within_grace(NOW, NOW + REUSE_GRACE + timedelta(seconds=1))


def test_a_refresh_tokens_successor_is_fixed_by_the_token_and_the_servers_key() -> None:
    token = new_refresh_token()
    successor = successor_of(token, b"k" * 32)
    assert successor == successor_of(token, b"k" * 32) and successor != token
    assert successor_of(token, b"j" * 32) != successor  # not computable without the key
    assert successor_of(new_refresh_token(), b"k" * 32) != successor
    assert len(successor) >= 43
