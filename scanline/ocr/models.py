"""Which tesseract models this process has, and the two model folders the engine reads.

Models are installed by the project's set-up, never fetched at run time: Debian's
``tesseract-ocr-<lang>`` packages bring the small ``_fast`` models (and ``osd`` for
orientation) into ``/usr/share/tesseract-ocr/5/tessdata``; the PyPI ``tessdata-<lang>``
packages bring the larger standard ones into ``<venv>/share/tessdata``. Tesseract reads one
folder per engine instance, so two folders of links are made once per process:

* ``primary``: for each language the standard model where one is installed, else the
  fast one. Measured on the shipped scans, the standard English and German models are what
  lifts eurotext from 0.92 to 0.97 and the UNLV pages above stock tesseract.
* ``second``: the fast model of each language that also has a standard one; the engine
  asks it for a second reading of the words the primary model was unsure of (on speckled
  scans the fast models are measured more robust, 0.98 vs 0.96 word recall).
"""

from __future__ import annotations

import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

DEBIAN_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
PYPI_TESSDATA = Path(sys.prefix) / "share" / "tessdata"
ORIENTATION = "osd"
# Tesseract data that is not a language one may ask for.
NOT_LANGUAGES = frozenset({ORIENTATION, "equ"})
SUFFIX = ".traineddata"


@dataclass(frozen=True)
class ModelSet:
    primary: Path
    second: Path | None  # None: no language has two models
    languages: frozenset[str]
    second_languages: frozenset[str]
    orientation: bool  # osd.traineddata is there
    sources: dict[str, str]  # language → the model file primary links to


def _models(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name[:-len(SUFFIX)]: p for p in folder.glob(f"*{SUFFIX}")}


def _linked(folder: Path, models: dict[str, Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in models.items():
        (folder / f"{name}{SUFFIX}").symlink_to(target.resolve())
    return folder


def discover(standard: Path = PYPI_TESSDATA, fast: Path = DEBIAN_TESSDATA,
             workdir: Path | None = None) -> ModelSet:
    fast_models, standard_models = _models(fast), _models(standard)
    primary = {**fast_models, **standard_models}
    # The same file in both (an identical osd) is no second opinion.
    second = {lang: path for lang, path in fast_models.items()
              if lang in standard_models and lang not in NOT_LANGUAGES
              and path.stat().st_size != standard_models[lang].stat().st_size}
    root = workdir or Path(tempfile.mkdtemp(prefix="scanline-tessdata-"))
    return ModelSet(
        primary=_linked(root / "primary", primary),
        second=_linked(root / "second", second) if second else None,
        languages=frozenset(primary) - NOT_LANGUAGES,
        second_languages=frozenset(second) - NOT_LANGUAGES,
        orientation=ORIENTATION in primary,
        sources={lang: str(path) for lang, path in sorted(primary.items())})


_installed: ModelSet | None = None
_lock = threading.Lock()


def installed() -> ModelSet:
    """The process's model set, made on first use."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = discover()
        return _installed
