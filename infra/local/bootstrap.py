"""Install what the local stack needs on a fresh Debian/Ubuntu machine; fast when done.

Runs with the system ``python3`` before the venv exists, so it uses the standard library
only. apt runs only when a package is missing; pip runs only when the requirements files
(or pyproject.toml, which declares the ``scanline`` CLI) changed since the last
successful install (a stamp keyed by their hash).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
STAMP = VENV / ".requirements.sha256"
APT_PACKAGES = ("postgresql", "rabbitmq-server", "tesseract-ocr", "fonts-dejavu-core",
                "python3-venv", "tesseract-ocr-osd", "tesseract-ocr-deu", "tesseract-ocr-fra",
                "tesseract-ocr-spa", "tesseract-ocr-ita", "tesseract-ocr-por",
                "poppler-utils",
                # Test tools (tests/deploy): a minimal Debian root per image, to import each
                # function with only what its image installs; Compose v1 for `config`.
                "debootstrap", "docker-compose",
                # The console's browser tests (tests/e2e/test_console.py): headless Chromium.
                "chromium", "chromium-driver")
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "infra/local/requirements.txt")


def _missing_apt_packages() -> list[str]:
    missing = []
    for package in APT_PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def install_apt_packages() -> None:
    missing = _missing_apt_packages()
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(missing)} with apt", flush=True)
    subprocess.run([*sudo, "apt-get", "update"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing],
                   check=True, env=env)


def _requirement_files() -> list[Path]:
    return [REPO / name for name in REQUIREMENTS if (REPO / name).is_file()]


def _digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        # Nested "-r other.txt" lines change what gets installed too.
        for line in path.read_text().splitlines():
            if line.strip().startswith("-r "):
                nested = (path.parent / line.strip()[3:].strip())
                if nested.is_file():
                    digest.update(nested.read_bytes())
    return digest.hexdigest()


def install_python_packages() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    files = _requirement_files()
    digest = _digest([*files, REPO / "pyproject.toml"])
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    args = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for path in files:
        args += ["-r", str(path)]
    args += ["-e", str(REPO)]  # the `scanline` CLI (pyproject.toml), as .venv/bin/scanline
    print("installing Python requirements into .venv", flush=True)
    subprocess.run(args, check=True, cwd=REPO)
    STAMP.write_text(digest + "\n")


def main() -> None:
    if shutil.which("apt-get"):
        install_apt_packages()
    install_python_packages()


if __name__ == "__main__":
    main()
