"""Lay out each function's build context exactly as ``faas-cli build`` does.

faas-cli copies ``template/<lang>/`` to ``build/<fn>/``, overlays the handler folder onto
``build/<fn>/function/`` (skipping ``build`` and ``template``), then copies each
``configuration.copy`` path to ``build/<fn>/function/<path>``. Running the local processes
from the same layout means an import that works here works in the image.
"""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path

from infra.local import paths
from infra.local.stackfile import Stack, load

SKIPPED = {"build", "template"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def ensure_template_link(root: Path = paths.REPO) -> Path:
    """faas-cli reads only ``./template``; the repository keeps ``templates/``."""
    link = root / "template"
    if not link.exists() and not link.is_symlink():
        link.symlink_to("templates")
    return link


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=IGNORED)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def build_context(fn: str, stack: Stack, out: Path = paths.BUILD_DIR) -> Path:
    """Rebuild ``out/<fn>`` from scratch and return it."""
    function = stack.functions[fn]
    root = stack.root
    template = ensure_template_link(root) / function.lang
    if not template.is_dir():
        raise FileNotFoundError(f"{fn}: template {function.lang!r} not found under {template}")
    context = out / fn
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(template, context, symlinks=False, ignore=IGNORED)
    target = context / "function"
    target.mkdir(exist_ok=True)
    handler = root / function.handler
    for entry in sorted(handler.iterdir()):
        if entry.name not in SKIPPED:
            _copy(entry, target / entry.name)
    for extra in stack.copy:
        # path.Join(handlerDir, path) in faas-cli: "./scanline" -> "function/scanline".
        relative = posixpath.normpath(posixpath.join(".", extra))
        if relative.startswith(".."):
            raise ValueError(f"configuration.copy path {extra!r} leaves the repository")
        _copy(root / relative, target / relative)
    return context


def build_all(stack: Stack | None = None, out: Path = paths.BUILD_DIR) -> list[Path]:
    stack = stack or load()
    return [build_context(name, stack, out) for name in stack.functions]


if __name__ == "__main__":
    for built in build_all():
        print(built)
