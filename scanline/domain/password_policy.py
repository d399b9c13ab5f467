"""Which passwords an account may have (OWASP ASVS 5.0 §6.2).

- Normalised to Unicode NFKC before anything else, on register, login and change alike, so
  a password typed as NFD on one device and NFC on another is the same password (6.2.4's
  "any characters" only works if they compare equal).
- 8 to 256 characters, counted after normalisation, before any hashing.
- Not a context word (6.2.11): it may not contain the address, its local part (4+
  characters) or "scanline", and may not be the account's name give or take digits and
  punctuation ("Anna Lee 2026!"), compared case-insensitively. A name is only refused as
  the password itself: a password that merely mentions a word of it is no guess.
- Not a known breached password: 437,651 passwords compiled from SecLists' lists of leaked
  and most common passwords (``scanline/data``, see its README) — more than the 100,000
  most common. Held as a sorted array of 64-bit digests (3.5 MiB, loaded on first use) and
  searched by bisection: the same number of steps for any password, present or not. If
  the list cannot be loaded the check fails closed (503), it never lets a password through.
  A listed password dressed in digits and punctuation at its ends ("Password123!",
  "iloveyou2024") is the listed one: the first thing a guesser tries.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import string
import threading
import unicodedata
from array import array
from pathlib import Path

from scanline.errors import DependencyUnavailable, InvalidInput

PASSWORD_MIN = 8
PASSWORD_MAX = 256
BREACHED_LIST = Path(__file__).resolve().parents[1] / "data" / "common-passwords.txt.gz"
PRODUCT_WORDS = ("scanline",)
# What a guesser adds around a common password; a core shorter than this is not one.
_DECORATION = string.digits + string.punctuation + " "
_CORE_MIN = 4


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _refuse(problem: str, pointer: str) -> InvalidInput:
    # The detail never quotes the password (a schema message would echo it back).
    return InvalidInput("the password does not meet the policy",
                        errors=[{"pointer": pointer, "detail": problem}])


def check_length(password: str, pointer: str = "/password") -> None:
    """Counted in characters, before any hashing: an oversized password costs nothing."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise _refuse(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long", pointer)


def _digest(password: str) -> int:
    folded = normalise(password).casefold()
    return int.from_bytes(hashlib.sha256(folded.encode("utf-8", "surrogatepass")).digest()[:8],
                          "big")


class BreachedPasswords:
    """The shipped list, loaded once per process on first use."""

    def __init__(self, path: Path = BREACHED_LIST) -> None:
        self._path = path
        self._digests: array[int] | None = None
        self._lock = threading.Lock()

    def _load(self) -> array[int]:
        with self._lock:
            if self._digests is None:
                try:
                    with gzip.open(self._path, "rt", encoding="utf-8", errors="replace") as f:
                        digests = sorted({_digest(line.rstrip("\n")) for line in f if line.strip()})
                except OSError as exc:
                    raise DependencyUnavailable(
                        "password-list", f"the breached-password list cannot be read: {exc}"
                    ) from None
                if len(digests) < 100_000:
                    raise DependencyUnavailable(
                        "password-list", f"the breached-password list has only {len(digests)} "
                                         "entries")
                self._digests = array("Q", digests)
            return self._digests

    def preload(self) -> None:
        """Load the list on a background thread (it takes a couple of seconds), so the
        first request that needs it rarely waits; nothing is connected to."""
        threading.Thread(target=self._load, name="breached-passwords", daemon=True).start()

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, password: object) -> bool:
        if not isinstance(password, str):
            return False
        digests, wanted = self._load(), _digest(password)
        index = bisect.bisect_left(digests, wanted)
        return index < len(digests) and digests[index] == wanted


def _letters(text: str) -> str:
    return "".join(c for c in normalise(text).casefold() if c.isalpha())


def _contextual(password: str, email: str, name: str) -> bool:
    folded = password.casefold()
    local = email.split("@", 1)[0]
    contained = [w for w in (email, local, *PRODUCT_WORDS) if len(w) >= 4 or w == email]
    if any(normalise(word).casefold() in folded for word in contained):
        return True
    return bool(_letters(name)) and _letters(password) == _letters(name)


def check(password: str, *, email: str, name: str = "", breached: BreachedPasswords,
          pointer: str = "/password") -> None:
    """Raise ``InvalidInput`` for a (normalised) password an account may not have."""
    check_length(password, pointer)
    if _contextual(password, email, name):
        raise _refuse("must not contain your address or the service's name, nor be your "
                      "name", pointer)
    core = normalise(password).strip(_DECORATION)
    if password in breached or (len(core) >= _CORE_MIN and core in breached):
        raise _refuse("is a known, commonly used or breached password; choose another",
                      pointer)
