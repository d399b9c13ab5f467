"""What the fuzz suites share: a signed-up user with an access token, and a way to prove
that no function process crashed (its supervisord pid is the same afterwards)."""

from __future__ import annotations

import pytest

from bench.ocr_client import OcrClient
from infra.local.stackfile import load
from tests.support.outages import programs
from tests.support.stack import Stack

FUNCTIONS = tuple(load(environ={}).functions)


@pytest.fixture(scope="session")
def fuzz_user(stack: Stack) -> OcrClient:
    """register → the OTP from the mail sink → verify-otp → token."""
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="fuzz")


def running_pids(stack: Stack) -> dict[str, int | None]:
    """Each function's pid as supervisord reports it (None unless RUNNING)."""
    found = programs(stack)
    return {name: found[name].pid if found[name].state == "RUNNING" else None
            for name in FUNCTIONS}


@pytest.fixture
def no_crash(stack: Stack):  # type: ignore[no-untyped-def]
    """Fails the test if any function process was restarted while it ran."""
    before = running_pids(stack)
    assert None not in before.values(), f"a function is not running: {before}"
    yield
    assert running_pids(stack) == before, "a function process died and was restarted"
