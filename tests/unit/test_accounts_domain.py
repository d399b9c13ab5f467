"""Pure account rules: addresses, password policy and hashing, OTPs, limits, token claims."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from scanline.domain import otp
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import LOGIN_FAILURES, OTP_RESEND, Limit
from scanline.domain.tokens import access_claims, new_refresh_token, refresh_token_hash
from scanline.domain.users import (
    PASSWORD_MAX,
    check_password_policy,
    email_key,
    is_common_password,
    normalise_email,
)
from scanline.errors import InvalidInput

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

@pytest.mark.parametrize("password", ["password", "PASSWORD", "12345678", "baseball",
                                      "iloveyou", "trustno1"])
def test_common_passwords_are_refused_whatever_their_case(password: str) -> None:
    assert is_common_password(password)
    with pytest.raises(InvalidInput):
        check_password_policy(password)


@pytest.mark.parametrize("password", ["short1!", "x" * (PASSWORD_MAX + 1), "x" * 10_000])
def test_length_is_8_to_256_characters(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_password_policy(password)
    assert "characters" in caught.value.errors[0]["detail"]


@pytest.mark.parametrize("password", ["correct horse battery staple", "x" * PASSWORD_MAX,
                                      "Zürich-Straße-42", "🔑🔑🔑🔑🔑🔑🔑🔑"])
def test_long_uncommon_passwords_of_any_characters_are_accepted(password: str) -> None:
    check_password_policy(password)


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
    stored = hasher.hash("correct horse battery staple")

    def timed(stored_hash: str | None) -> float:
        started = time.perf_counter()
        for _ in range(5):
            assert not hasher.verify("wrong password!", stored_hash)
        return time.perf_counter() - started

    unknown, wrong = timed(None), timed(stored)
    assert 0.7 < unknown / wrong < 1.4


# ---- OTP -------------------------------------------------------------------------------

def test_codes_are_six_random_digits() -> None:
    codes = {otp.generate() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes)
    assert len(codes) > 190


def test_digest_is_keyed_and_bound_to_the_user() -> None:
    d = otp.digest(KEY, "u1", "123456")
    assert len(d) == 32 and b"123456" not in d
    assert d != otp.digest(KEY, "u2", "123456")
    assert d != otp.digest(b"j" * 32, "u1", "123456")


def attempt(code: str = "123456", attempts: int = 1, expires_in: float = 60,
            used: bool = False) -> otp.Attempt:
    return otp.Attempt(user_id="u1", digest=otp.digest(KEY, "u1", code), attempts=attempts,
                       expires_at=NOW + timedelta(seconds=expires_in), used=used)


def test_right_code_within_lifetime_and_attempts_is_ok() -> None:
    assert otp.judge(attempt(attempts=otp.MAX_ATTEMPTS), KEY, "123456", NOW) == otp.Verdict.OK


@pytest.mark.parametrize("given", [attempt(expires_in=0), attempt(expires_in=-1),
                                   attempt(used=True), None])
def test_expired_used_or_missing_codes_are_invalid(given: otp.Attempt | None) -> None:
    assert otp.judge(given, KEY, "123456", NOW) == otp.Verdict.INVALID


def test_wrong_codes_are_invalid_until_the_fifth_which_kills_the_code() -> None:
    verdicts = [otp.judge(attempt(attempts=n), KEY, "654321", NOW) for n in range(1, 6)]
    assert verdicts == [otp.Verdict.INVALID] * 4 + [otp.Verdict.EXHAUSTED]


def test_after_five_attempts_even_the_right_code_is_refused() -> None:
    late = attempt(attempts=otp.MAX_ATTEMPTS + 1)
    assert otp.judge(late, KEY, "123456", NOW) == otp.Verdict.EXHAUSTED


def test_code_lives_ten_minutes() -> None:
    assert otp.expiry(NOW) - NOW == timedelta(minutes=10)


# ---- limits ----------------------------------------------------------------------------

def test_limit_allows_until_reached_then_tells_when_to_retry() -> None:
    limit = Limit("t", allowed=2, window=timedelta(seconds=60))
    assert limit.retry_after(NOW, 1, NOW) is None
    assert limit.retry_after(NOW, 2, NOW + timedelta(seconds=15)) == 45
    assert limit.retry_after(NOW, 2, NOW + timedelta(seconds=59.5)) == 1
    assert limit.retry_after(NOW, 99, NOW + timedelta(seconds=60)) is None


def test_configured_limits() -> None:
    assert (OTP_RESEND.allowed, OTP_RESEND.window) == (1, timedelta(seconds=60))
    assert LOGIN_FAILURES.allowed >= 5


# ---- tokens ----------------------------------------------------------------------------

def test_access_claims_carry_no_personal_data_and_expire_in_15_minutes() -> None:
    claims = access_claims("user-1", issuer="iss", audience="aud", now=NOW)
    assert set(claims) == {"sub", "iss", "aud", "iat", "nbf", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert claims["jti"] != access_claims("user-1", issuer="iss", audience="aud", now=NOW)["jti"]


def test_refresh_tokens_are_random_and_stored_as_a_hash() -> None:
    token = new_refresh_token()
    assert len(token) >= 43 and token != new_refresh_token()
    assert refresh_token_hash(token) == refresh_token_hash(token)
    assert token.encode() not in refresh_token_hash(token)
