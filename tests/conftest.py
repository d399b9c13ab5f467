"""Fixtures shared by the integration and e2e suites: they talk to the real local stack
that `make test` (or `make up`) started; nothing here starts or fakes a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from scanline.bootstrap import Container
from scanline.settings import Settings
from tests.support.broker import EventTap
from tests.support.mailbox import Mailbox
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    running = Stack()
    try:
        requests.get(f"{running.gateway}/healthz", timeout=5)
    except requests.RequestException as exc:
        pytest.fail(f"the local stack is not running ({exc}); start it with `make up`")
    return running


@pytest.fixture(scope="session")
def mailbox(stack: Stack) -> Mailbox:
    return Mailbox(stack.mail_dir)


@pytest.fixture(scope="session")
def tap(stack: Stack) -> EventTap:
    return EventTap(stack.amqp_url)


@pytest.fixture
def container(stack: Stack) -> Iterator[Container]:
    """Adapters wired to the local stack, as a function named "itest" would get them."""
    from infra.local.environment import function_environment

    built = Container(Settings.from_env({**function_environment("itest"),
                                         "FUNCTION_NAME": "itest"}))
    yield built
    built.close()
