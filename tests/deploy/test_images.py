"""Every image's Python imports work with only what its Dockerfile installs.

Each function image (and the connector's) is rebuilt as a directory (tests/support/imageroot:
a debootstrap'd Debian root with the image's Debian packages, exactly the Python
distributions its requirement files pull in, and its code) and, inside it with chroot,
the image's entry point is imported the way the watchdog starts it: index.py builds the
app (every handler import, the routes compiled) and answers ``/_/health``; then every
distribution the function asks for directly is imported, and where the image carries an
OCR engine it is built (keras-ocr's two models without their weights, tesseract asked for
its version) with the function's own stack.yml environment. A wheel that needs a shared
library its image lacks (``libGL.so.1``), a setting that breaks an engine
(``TF_USE_LEGACY_KERAS``), or a module no requirement brings, fails here as in the image.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from infra.generate.common import REPO, load_stack
from infra.local.build import build_context
from tests.support import imageroot

TEMPLATE = REPO / "templates/python3-flask-cloudevents"
CONNECTOR_DOCKERFILE = REPO / "infra/connector/Dockerfile"
STACK = load_stack({})
CHECK = """
import importlib, runpy
ns = runpy.run_path("index.py", run_name="image_check")
assert ns["app"].test_client().get("/_/health").status_code == 200
for module in {modules!r}:
    importlib.import_module(module)
{engines}
ns["container"].close()
print("IMAGE-OK", flush=True)
os._exit(0)
"""
KERAS_OCR = """
import keras_ocr
keras_ocr.detection.Detector(weights=None)
keras_ocr.recognition.Recognizer(alphabet=keras_ocr.recognition.DEFAULT_ALPHABET, weights=None)
"""
TESSERACT = """
import pytesseract
print("tesseract", pytesseract.get_tesseract_version())
"""


@pytest.fixture(scope="module", autouse=True)
def privileged() -> None:
    missing = [tool for tool in ("debootstrap", "chroot", "unshare") if shutil.which(tool) is None]
    reason = (f"needs {', '.join(missing)}" if missing else
              "needs root (debootstrap, chroot)" if os.geteuid() != 0 else "")
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _top_level(distribution) -> list[str]:
    text = distribution.read_text("top_level.txt")
    if text:
        return [m for m in text.split() if m.isidentifier() and not m.startswith("_")]
    names = {f.parts[0].removesuffix(".py") for f in distribution.files or ()
             if len(f.parts) > 1 or f.suffix == ".py"}
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_")
                  and not n.endswith("dist-info"))


def _importable(site: Path, module: str) -> bool:
    """A package (``__init__.py``) or a module file, not a folder of headers."""
    return (site / module / "__init__.py").is_file() or any(site.glob(f"{module}.*py")) \
        or any(site.glob(f"{module}.*.so")) or (site / f"{module}.py").is_file()


def _direct(path: Path) -> list[str]:
    return [imageroot._canonical(r.name) for r in imageroot._requirements(path)]


@pytest.mark.parametrize("name", list(STACK.functions))
def test_function_image_imports_with_only_its_own_packages(name: str) -> None:
    fn = STACK.functions[name]
    files = [TEMPLATE / "requirements.txt", REPO / fn.handler / "requirements.txt"]
    distributions = imageroot.closure(files)
    root = imageroot.root_for(fn.build_args.get("ADDITIONAL_PACKAGE", "").split())
    home = root / "home"
    shutil.rmtree(home / name, ignore_errors=True)
    build_context(name, STACK, out=home)
    site = imageroot.stage_site(root, distributions)
    modules = [m for d in _direct(files[1]) for m in _top_level(distributions[d])
               if _importable(site, m)]
    engines = (KERAS_OCR if "keras-ocr" in distributions else "") + \
        (TESSERACT if "pytesseract" in distributions else "")
    env = {**fn.environment, "SECRETS_DIR": "/run/secrets"}
    result = imageroot.run(root, CHECK.format(modules=modules, engines=engines), env,
                           cwd=f"/home/{name}")
    assert "IMAGE-OK" in result.stdout, f"{name}:\n{result.stdout}\n{result.stderr[-4000:]}"


def _connector_layout(root: Path) -> None:
    """What the connector's Dockerfile COPYs from the repository, where it puts it."""
    source = root / "src"
    shutil.rmtree(source, ignore_errors=True)
    for line in CONNECTOR_DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--") for w in words):
            continue
        *sources, target = words[1:]
        for item in sources:
            # Docker's rules: a folder's contents go into the target; a file goes into a
            # target that ends in "/", or becomes the target.
            destination = source / target
            if (REPO / item).is_dir():
                shutil.copytree(REPO / item, destination, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
                continue
            if target.endswith("/"):
                destination = destination / Path(item).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / item, destination)


def test_connector_image_imports_with_only_its_own_packages() -> None:
    requirements = REPO / "infra/connector/requirements.txt"
    root = imageroot.root_for(())
    imageroot.stage_site(root, imageroot.closure([requirements]))
    _connector_layout(root)
    code = ("import infra.connector.trigger, infra.connector.deadletter_sink\n"
            "from infra.local.stackfile import load\n"
            "assert any(f.topics for f in load().functions.values())\n"
            "print('IMAGE-OK')")
    result = imageroot.run(root, code, {"PYTHONPATH": f"{imageroot.SITE}:/src"}, cwd="/src")
    assert "IMAGE-OK" in result.stdout, f"{result.stdout}\n{result.stderr[-4000:]}"


def test_the_swaps_modelled_here_are_the_dockerfiles() -> None:
    """The headless OpenCV the test installs is the one the template's Dockerfile installs."""
    dockerfile = (TEMPLATE / "Dockerfile").read_text()
    for installed, replacement in imageroot.DOCKERFILE_SWAPS.items():
        assert f"pip uninstall -y -q {installed}" in dockerfile
        assert f'"{replacement}==${{version}}"' in dockerfile
