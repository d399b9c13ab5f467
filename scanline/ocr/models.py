"""Which tesseract models this process has, and the model folders the engine reads.

Models are installed by the project's set-up, never fetched at run time: Debian's
``tesseract-ocr-<lang>`` packages bring the small ``_fast`` models (and ``osd`` for
orientation) into ``/usr/share/tesseract-ocr/5/tessdata``; the PyPI ``tessdata-<lang>``
packages bring the larger standard ones into ``<venv>/share/tessdata``. Tesseract reads one
folder per engine instance, so folders of links are made once per process, and a request is
read in two passes from the pair that suits it (``ModelSet.passes``):

* **one language**: its fast model first, then the standard model for the words the fast
  one was unsure of. Measured on the bench, the UNLV scans, the German page and the letter
  page: the standard model's recall or better (8071_093.3B 0.989 → 0.991), in 0.7 of the
  time (the standard model's LSTM is the larger).
* **several languages**: the standard models first, then each language's fast model
  (its only one where it has one) for the doubtful words. Tesseract picks a model per
  word and keeps the first reading it finds acceptable; the fast models read diacritics of
  one language as another's, confidently (``á`` read by the German model as ``ä``), which
  no second reading revisits: eurotext 0.92 with the fast models first, 0.97 with the
  standard ones.

A request none of whose languages has two models (Debian's fast French, say) is read once.
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
    standard_first: Path  # each language's standard model where installed, else its fast one
    fast_first: Path  # each language's fast model where installed, else its standard one
    standard: Path | None  # the standard model of each language that has both (else None)
    languages: frozenset[str]
    both: frozenset[str]  # the languages with two models
    orientation: bool  # osd.traineddata is there

    def passes(self, languages: str) -> tuple[Path, Path | None]:
        """The folder a page of ``languages`` is read from, and the folder its doubtful
        words are read again from (None: no second reading, no language of the request
        has a second model)."""
        wanted = languages.split("+")
        if not self.both.intersection(wanted):
            return (self.fast_first if len(wanted) == 1 else self.standard_first), None
        if len(wanted) == 1:
            return self.fast_first, self.standard
        return self.standard_first, self.fast_first


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
    # The same file in both (an identical osd) is no second opinion.
    both = {lang for lang, path in fast_models.items()
            if lang in standard_models and lang not in NOT_LANGUAGES
            and path.stat().st_size != standard_models[lang].stat().st_size}
    everything = {**fast_models, **standard_models}
    root = workdir or Path(tempfile.mkdtemp(prefix="scanline-tessdata-"))
    return ModelSet(
        standard_first=_linked(root / "standard-first", everything),
        fast_first=_linked(root / "fast-first", {**standard_models, **fast_models}),
        standard=_linked(root / "standard", {lang: standard_models[lang] for lang in both})
        if both else None,
        languages=frozenset(everything) - NOT_LANGUAGES,
        both=frozenset(both),
        orientation=ORIENTATION in everything)


_installed: ModelSet | None = None
_lock = threading.Lock()


def installed() -> ModelSet:
    """The process's model set, made on first use."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = discover()
        return _installed
