"""What an image holds, rebuilt without Docker: a minimal Debian root with the image's
Debian packages, its Python distributions, and its code.

- The root: ``debootstrap --variant=minbase bookworm`` (the base of python:3.11-slim-bookworm)
  with the packages the image adds: the ones the official Python image keeps (CA
  certificates, netbase, tzdata), a Python 3.11 (Debian's, which brings the same runtime
  libraries the official image keeps for its own build), and the function's
  ``ADDITIONAL_PACKAGE`` build argument, installed by the root's own apt into a copy of the
  base root. Cached under ``.local/image-roots/<digest>``.
- The distributions: exactly the requirement closure of the requirement files the
  Dockerfile installs, resolved from the installed metadata of ``.venv`` (the same versions),
  hard-linked (or copied) into the root, with the Dockerfile's own swaps applied
  (``DOCKERFILE_SWAPS``: the headless OpenCV wheel, downloaded once into the cache).
- The code: the function's build context (``infra.local.build``), where the image has it.

``run`` then executes Python inside it with ``chroot`` (in a private mount namespace with
its own ``/proc``): an import that needs a shared
library no installed package provides, or a distribution the requirements do not bring,
fails here as it would in the image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from infra.local.paths import LOCAL

CACHE = LOCAL / "image-roots"
SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Debian splits distutils and lib2to3 out of its python3.11; the official image has them.
BASE_PACKAGES = ("ca-certificates", "netbase", "tzdata", "python3.11", "python3-distutils",
                 "python3-lib2to3")
SITE = "/opt/venv/site-packages"
# What the template's Dockerfile replaces after pip install (see its build stage).
DOCKERFILE_SWAPS = {"opencv-python": "opencv-python-headless"}


def _cached(key: str, make: Callable[[Path], None]) -> Path:
    """``CACHE/<digest of key>``, made by ``make`` into a partial folder on first use."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = CACHE / digest
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    partial = CACHE / f"{digest}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    make(partial)
    (partial / ".complete").write_text(key + "\n")
    partial.rename(root)
    return root


def _inside(root: Path, *command: str) -> list[str]:
    """``command`` chrooted into ``root``, in a private mount namespace with its own /proc
    (TensorFlow reads /proc/self/exe; apt and dpkg want it too): nothing is mounted on the
    host, and it is gone with the process."""
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    script = f'mount -t proc proc "$0/proc" && exec {chroot} "$0" "$@"'
    return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script,
            str(root), *command]


def root_for(packages: Iterable[str]) -> Path:
    """A cached minimal Debian root with ``BASE_PACKAGES`` and ``packages`` installed: the
    base one is debootstrap'd (about a minute), one with more packages is a copy of it
    with them installed by its own apt (a fraction of that)."""
    extra = sorted(set(packages) - set(BASE_PACKAGES))

    def bootstrap(partial: Path) -> None:
        subprocess.run(["debootstrap", "--variant=minbase",
                        f"--include={','.join(sorted(BASE_PACKAGES))}", SUITE, str(partial),
                        MIRROR], check=True, capture_output=True, timeout=900)

    base = _cached(" ".join(sorted(BASE_PACKAGES)), bootstrap)
    if not extra:
        return base

    def add(partial: Path) -> None:
        # cp -a, not shutil.copytree: copytree reads device nodes as files, and the copy
        # of /dev/full never ends (it filled the disk once).
        subprocess.run(["cp", "-a", str(base), str(partial)], check=True, timeout=900)
        for own in ("opt", "home", "src"):
            shutil.rmtree(partial / own, ignore_errors=True)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
               "LANG": "C.UTF-8"}
        for command in (("apt-get", "update", "-q"),
                        ("apt-get", "install", "-y", "-q", "--no-install-recommends", *extra),
                        ("apt-get", "clean")):
            subprocess.run(_inside(partial, *command), env=env, check=True,
                           capture_output=True, timeout=900)

    return _cached(" ".join([*sorted(BASE_PACKAGES), *extra]), add)


def _requirements(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += _requirements(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirement_files: Iterable[Path]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the files' requirements pull in (markers evaluated)."""
    pending = [(r, "") for path in requirement_files for r in _requirements(path)]
    found: dict[str, metadata.Distribution] = {}
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = _canonical(requirement.name)
        if name in found:
            continue
        distribution = metadata.distribution(requirement.name)
        found[name] = distribution
        for child in distribution.requires or ():
            parsed = Requirement(child)
            for wanted in requirement.extras or {""}:
                pending.append((parsed, wanted))
    return found


def _link(source: Path, target: Path) -> None:
    if target.exists():  # listed twice in a RECORD
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _headless_wheel(name: str, version: str) -> Path:
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                        "--no-deps", "--only-binary=:all:", f"{name}=={version}",
                        "-d", str(wheels)], check=True, capture_output=True, timeout=600)
        found = sorted(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return found[0]


def stage_site(root: Path, distributions: dict[str, metadata.Distribution]) -> Path:
    """The image's site-packages inside ``root``: exactly ``distributions``, swapped as
    the Dockerfile swaps them."""
    site = root / SITE.lstrip("/")
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for name, distribution in sorted(distributions.items()):
        if name in DOCKERFILE_SWAPS:
            wheel = _headless_wheel(DOCKERFILE_SWAPS[name], distribution.version)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
            continue
        for file in distribution.files or ():
            source = Path(str(distribution.locate_file(file)))
            if source.is_file() and ".." not in file.parts:
                _link(source, site / file)
    return site


def run(root: Path, code: str, env: dict[str, str], cwd: str = "/") -> subprocess.CompletedProcess:
    """``python3.11 -c code`` inside ``root`` with only ``env`` (plus the image's paths)."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONPATH": SITE, "PYTHONDONTWRITEBYTECODE": "1", **env}
    script = f"import os; os.chdir({cwd!r})\n{code}"
    return subprocess.run(_inside(root, "/usr/bin/python3.11", "-c", script), env=environ,
                          capture_output=True, text=True, timeout=600, check=False)
