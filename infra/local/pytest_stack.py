"""pytest fixtures that make sure the local stack is up before a test talks to it.

``make test`` already runs ``make up``; this plugin lets ``pytest tests/...`` alone work too
by starting the stack in the background when ``/healthz`` does not answer. Use it with
``pytest_plugins = ["infra.local.pytest_stack"]`` in the root conftest, or import the
fixture into a test module.
"""

from __future__ import annotations

import subprocess

import pytest
import requests

from infra.local import paths
from infra.local.stackfile import Stack, load

GATEWAY = f"http://{paths.HOST}:{paths.GATEWAY_PORT}"


def _answers() -> bool:
    try:
        requests.get(f"{GATEWAY}/healthz", timeout=5)
        return True
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def local_stack() -> Stack:
    """The parsed stack.yml of a running stack (started with ``python -m infra.local up``)."""
    if not _answers():
        result = subprocess.run([str(paths.PYTHON), "-m", "infra.local", "up"], cwd=paths.REPO,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"could not start the local stack:\n{result.stdout}{result.stderr}")
    return load()
