"""The OCR engines behind one small protocol, and the one place that picks which to run.

Both engines take a page request (an upright page image, its DPI, the languages) and
return a ``PageRead``: the recognition, the orientation found and the page's size. Models
are loaded once per process and never downloaded: tesseract's from the installed model
folders (``scanline.ocr.models``), in-process through tesserocr's C API, one engine
instance per worker thread (tesserocr releases the GIL, so threads run in parallel);
keras-ocr's weights from a local directory (``Pipeline()`` would fetch them from GitHub).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from scanline.domain.ocr import Line, Recognition, Word, reading_order
from scanline.errors import DependencyUnavailable, InvalidInput
from scanline.ocr import models

if TYPE_CHECKING:  # numpy, which pre-processing needs, is in the ocr image only
    from scanline.ocr.prepare import Prepared

log = logging.getLogger(__name__)

TESSERACT = "tesseract"
KERAS_OCR = "keras-ocr"
AUTO = "auto"
# The file names keras-ocr itself downloads into its cache (KERAS_OCR_CACHE_DIR).
KERAS_WEIGHTS = {"detector": "craft_mlt_25k.h5", "recognizer": "crnn_kurapan.h5"}
# A page read with a mean word confidence under this, or found to have vertical lines
# (tesseract reads a sideways Latin page as vertical text), may not be upright: its
# orientation is detected and, when it says so, the turned page is read too; the more
# confident reading wins, vertical lines counting ``VERTICAL_PENALTY`` points against.
UPRIGHT_CONFIDENCE = 75
VERTICAL_PENALTY = 25
TOP_TO_BOTTOM = 2  # tesserocr.WritingDirection.TOP_TO_BOTTOM
# Words the first model reads with less confidence than this get a second reading.
DOUBTFUL = 70
# So do words that begin with a comma, full stop or closing mark glued to a letter, which
# no orthography writes: an opening mark the first model does not know (German „ read as
# ``,``) or a speck read as punctuation. Confidence does not flag them: eurotext's
# „schnelle” is read ``,schnelle”`` at 84, and by the other models as ``„schnelle”`` at 90.
_MISREAD = re.compile(r"[,.;:!?)\]}][^\W\d_]")
# Engine instances kept per thread (one per language combination in use).
APIS_PER_THREAD = 4
# Typographic ligatures the models print; a user searches for the letters.
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl",
                            "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st",
                            "\ufb06": "st"})


@dataclass(frozen=True)
class PageRequest:
    image: Image.Image  # upright as decoded (EXIF applied); may still be sideways
    dpi: float | None = None
    languages: str = "eng"


@dataclass(frozen=True)
class PageRead:
    recognition: Recognition
    angle: int  # clockwise turn of the content that was undone before reading
    width: int  # of the page as read (turned upright)
    height: int
    steps: tuple[str, ...] = ()


class Engine(Protocol):
    name: str
    # Most pages one ``recognize_batch`` call should get, and how many calls may run at once.
    max_batch: int
    workers: int

    def load(self) -> None: ...
    def recognize_batch(self, requests: Sequence[PageRequest]) -> list[PageRead]: ...


def as_request(item: PageRequest | Image.Image) -> PageRequest:
    """Engines also take bare images (tests, in-process callers)."""
    return item if isinstance(item, PageRequest) else PageRequest(item)


def _text(read: Any, *level: Any) -> str:
    """What tesserocr read, or "" where it read nothing: it raises ``RuntimeError`` for the
    C API's NULL (a blank page still yields one empty element to iterate over)."""
    try:
        return (read(*level) or "").strip()
    except RuntimeError:
        return ""


def _unrotate(points: Sequence[tuple[float, float]], prepared: Prepared,
              size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Points of the deskewed image back in the page it was made from (``size``)."""
    if not prepared.skew:
        return tuple((round(x), round(y)) for x, y in points)
    turn = math.radians(prepared.skew)
    cos, sin = math.cos(turn), math.sin(turn)
    cx, cy = prepared.image.width / 2, prepared.image.height / 2
    ox, oy = size[0] / 2, size[1] / 2
    out = []
    for x, y in points:
        dx, dy = x - cx, y - cy
        # PIL turned the page counter-clockwise by ``skew``; turn the point back.
        out.append((round(ox + dx * cos - dy * sin), round(oy + dx * sin + dy * cos)))
    return tuple(out)


def _doubtful(text: str, confidence: float) -> bool:
    return confidence < DOUBTFUL or _MISREAD.match(text) is not None


class TesseractEngine:
    """Tesseract through tesserocr: per page, pre-processing decided from the page itself
    (``scanline.ocr.prepare``), orientation checked when the first reading is unsure,
    doubtful words read again by the second model set, words with boxes and confidence
    in lines and paragraphs."""

    name = TESSERACT
    max_batch = 1

    def __init__(self, workers: int | None = None, model_set: models.ModelSet | None = None,
                 page_timeout: float = 120.0) -> None:
        # One OpenMP thread per page (a libtesseract built with OpenMP): on few cores,
        # parallel pages beat threaded pages.
        os.environ["OMP_THREAD_LIMIT"] = "1"
        # One page at a time per core this process may use (its affinity).
        self.workers = workers or len(os.sched_getaffinity(0))
        self._models = model_set
        self._page_timeout_ms = int(page_timeout * 1000)
        self._local = threading.local()
        self.version: str | None = None

    @property
    def models(self) -> models.ModelSet:
        if self._models is None:
            self._models = models.installed()
        return self._models

    def load(self) -> None:
        if self.version is None:
            try:
                import tesserocr
            except ImportError as exc:
                raise DependencyUnavailable("tesseract", "tesserocr is not installed") from exc
            if not self.models.languages:
                raise DependencyUnavailable("tesseract", "no tesseract models are installed")
            self.version = tesserocr.tesseract_version().split()[1]

    def _api(self, folder: Path, languages: str, orientation: bool = False) -> Any:
        import tesserocr

        cache: OrderedDict[tuple[str, str], Any] = self._local.__dict__.setdefault(
            "apis", OrderedDict())
        key = (str(folder), languages)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        if orientation:
            api = tesserocr.PyTessBaseAPI(path=f"{folder}/", lang=languages,
                                          psm=tesserocr.PSM.OSD_ONLY,
                                          oem=tesserocr.OEM.TESSERACT_ONLY)
        else:
            api = tesserocr.PyTessBaseAPI(path=f"{folder}/", lang=languages,
                                          psm=tesserocr.PSM.AUTO,
                                          oem=tesserocr.OEM.LSTM_ONLY)
        api.SetVariable("debug_file", "/dev/null")
        cache[key] = api
        while len(cache) > APIS_PER_THREAD:
            cache.popitem(last=False)[1].End()
        return api

    def check_languages(self, languages: str) -> None:
        missing = [lang for lang in languages.split("+") if lang not in self.models.languages]
        if missing:
            raise InvalidInput(f"no model for {', '.join(missing)} is installed here; "
                               f"installed: {'+'.join(sorted(self.models.languages))}")

    def recognize_batch(self, requests: Sequence[PageRequest | Image.Image]) -> list[PageRead]:
        self.load()
        return [self._page(as_request(r)) for r in requests]

    def _page(self, request: PageRequest) -> PageRead:
        self.check_languages(request.languages)
        first = self._read(request.image, request, 0)
        if first[1] >= UPRIGHT_CONFIDENCE or not self.models.orientation:
            return first[0]
        angle = self._orientation(first[2])
        if angle == 0:
            return first[0]
        turned = self._read(request.image.rotate(angle, expand=True), request, angle)
        return turned[0] if turned[1] > first[1] else first[0]

    def _orientation(self, prepared: Prepared) -> int:
        api = self._api(self.models.standard_first, models.ORIENTATION, orientation=True)
        api.SetImage(prepared.image)
        api.SetSourceResolution(prepared.dpi)
        found = api.DetectOrientationScript()
        return int(found["orient_deg"]) if found else 0

    def _read(self, image: Image.Image, request: PageRequest,
              angle: int) -> tuple[PageRead, float, Prepared]:
        import tesserocr
        from tesserocr import RIL

        from scanline.ocr.prepare import prepare

        prepared = prepare(image, request.dpi)
        first, second = self.models.passes(request.languages)
        api = self._api(first, request.languages)
        api.SetImage(prepared.image)
        api.SetSourceResolution(prepared.dpi)
        if not api.Recognize(self._page_timeout_ms):
            raise InvalidInput(f"a page took longer than {self._page_timeout_ms // 1000} s "
                               "to read")
        found: list[tuple[str, float, tuple[int, int, int, int], bool, bool]] = []
        vertical = False
        vertical_words = 0
        for word in tesserocr.iterate_level(api.GetIterator(), RIL.WORD):
            text = _text(word.GetUTF8Text, RIL.WORD)
            if word.IsAtBeginningOf(RIL.BLOCK):
                vertical = word.Orientation()[1] == TOP_TO_BOTTOM
            if text:
                vertical_words += vertical
                found.append((text, word.Confidence(RIL.WORD), word.BoundingBox(RIL.WORD),
                              word.IsAtBeginningOf(RIL.PARA), word.IsAtBeginningOf(RIL.TEXTLINE)))
        if second is not None:
            found = self._second_reading(found, prepared, request.languages, second)
        recognition = self._recognition(found, prepared, image.size)
        score = sum(c for _, c, *_ in found) / len(found) if found else 0.0
        if found and vertical_words * 2 > len(found):
            score -= VERTICAL_PENALTY
        read = PageRead(recognition, angle, image.width, image.height, prepared.steps)
        return read, score, prepared

    def _second_reading(self, found: list[Any], prepared: Prepared, languages: str,
                        second: Path) -> list[Any]:
        """Doubtful words again, each alone, with the other model of its language: the
        more confident reading of the two is kept."""
        import tesserocr

        if not any(_doubtful(t, c) for t, c, *_ in found):
            return found
        api = self._api(second, languages)
        api.SetImage(prepared.image)
        api.SetSourceResolution(prepared.dpi)
        api.SetPageSegMode(tesserocr.PSM.SINGLE_WORD)
        try:
            out = []
            for text, confidence, (x0, y0, x1, y1), para, line in found:
                if _doubtful(text, confidence):
                    api.SetRectangle(max(0, x0 - 3), max(0, y0 - 3), x1 - x0 + 6, y1 - y0 + 6)
                    again = _text(api.GetUTF8Text)
                    mean = float(api.MeanTextConf())
                    if again and " " not in again and mean > confidence:
                        text, confidence = again, mean
                out.append((text, confidence, (x0, y0, x1, y1), para, line))
            return out
        finally:
            api.SetPageSegMode(tesserocr.PSM.AUTO)

    @staticmethod
    def _recognition(found: list[Any], prepared: Prepared,
                     size: tuple[int, int]) -> Recognition:
        """Words in lines; the text as ``tesseract FILE -`` prints it (a line per line, a
        blank line between paragraphs)."""
        paragraphs: list[list[list[Word]]] = []
        for text, confidence, (x0, y0, x1, y1), para, line in found:
            box = _unrotate(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), prepared, size)
            word = Word(text.translate(_LIGATURES), box,  # type: ignore[arg-type]
                        round(max(0.0, min(100.0, confidence)) / 100, 3))
            if para or not paragraphs:
                paragraphs.append([])
            if line or not paragraphs[-1]:
                paragraphs[-1].append([])
            paragraphs[-1][-1].append(word)
        lines = [Line(tuple(words), n) for n, par in enumerate(paragraphs, 1) for words in par]
        text = "\n\n".join("\n".join(Line(tuple(words)).text for words in par)
                            for par in paragraphs)
        return Recognition(text=text, lines=lines)


class KerasOcrEngine:
    """keras-ocr's CRAFT detector + CRNN recogniser, weights from ``model_dir``.

    ``loads`` counts model constructions, so tests can prove there is one per process.
    Images in one call are padded to a common size and run through the models together.
    """

    name = KERAS_OCR
    workers = 1  # TensorFlow already uses every core for one batch

    def __init__(self, model_dir: Path, max_batch: int = 4, scale: float = 2,
                 max_size: int = 2048) -> None:
        self.model_dir = model_dir
        self.max_batch = max_batch
        self._scale, self._max_size = scale, max_size
        self._pipeline: Any = None
        self._lock = threading.Lock()
        self.loads = 0

    @staticmethod
    def weight_paths(model_dir: Path) -> dict[str, Path]:
        return {part: model_dir / name for part, name in KERAS_WEIGHTS.items()}

    @classmethod
    def weights_present(cls, model_dir: Path) -> bool:
        return all(p.is_file() for p in cls.weight_paths(model_dir).values())

    def load(self) -> None:
        with self._lock:
            if self._pipeline is not None:
                return
            paths = self.weight_paths(self.model_dir)
            missing = [str(p) for p in paths.values() if not p.is_file()]
            if missing:
                raise DependencyUnavailable("keras-ocr", f"model weights missing: {missing}")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras_ocr

            detector = keras_ocr.detection.Detector(weights=None)
            recognizer = keras_ocr.recognition.Recognizer(
                alphabet=keras_ocr.recognition.DEFAULT_ALPHABET, weights=None)
            detector.model.load_weights(str(paths["detector"]))
            recognizer.model.load_weights(str(paths["recognizer"]))
            self._pipeline = keras_ocr.pipeline.Pipeline(
                detector=detector, recognizer=recognizer, scale=self._scale,
                max_size=self._max_size)
            self.loads += 1
            log.info("keras-ocr model loaded from %s", self.model_dir)

    def recognize_batch(self, requests: Sequence[PageRequest | Image.Image]) -> list[PageRead]:
        """keras-ocr finds no orientation and no confidence (``None``); its alphabet is
        lower-case English letters and digits."""
        import numpy as np

        self.load()
        images = [as_request(r).image.convert("RGB") for r in requests]
        groups = self._pipeline.recognize(
            [np.asarray(image) for image in images],
            detection_kwargs={"verbose": 0}, recognition_kwargs={"verbose": 0})
        results = []
        for image, group in zip(images, groups, strict=True):
            words = [Word(text, tuple((round(float(x)), round(float(y)))  # type: ignore[arg-type]
                                      for x, y in box)) for text, box in group]
            lines = reading_order(words)
            results.append(PageRead(Recognition("\n".join(line.text for line in lines), lines),
                                    0, image.width, image.height))
        return results


@dataclass(frozen=True)
class EngineChoice:
    name: str
    reason: str


def choose_engine(requested: str, model_dir: Path) -> EngineChoice:
    """``OCR_ENGINE`` → the engine to run. ``auto`` (the local stack) takes keras-ocr when
    its weights are in ``model_dir`` and tesseract otherwise; an explicit ``keras-ocr``
    without weights stays keras-ocr, so a broken deployment fails loudly (503s)."""
    requested = requested.strip().lower()
    present = KerasOcrEngine.weights_present(model_dir)
    if requested == TESSERACT:
        return EngineChoice(TESSERACT, "OCR_ENGINE=tesseract")
    if requested == KERAS_OCR:
        note = "weights found" if present else "WEIGHTS MISSING: jobs will be retried"
        return EngineChoice(KERAS_OCR, f"OCR_ENGINE=keras-ocr, {note} in {model_dir}")
    if requested == AUTO:
        if present:
            return EngineChoice(KERAS_OCR, f"OCR_ENGINE=auto, keras-ocr weights in {model_dir}")
        return EngineChoice(TESSERACT, f"OCR_ENGINE=auto, no keras-ocr weights in {model_dir}")
    raise ValueError(f"OCR_ENGINE must be {KERAS_OCR}, {TESSERACT} or {AUTO}, not {requested!r}")


def build_engine(name: str, *, model_dir: Path, keras_batch: int,
                 page_timeout: float = 120.0) -> Engine:
    if name == KERAS_OCR:
        return KerasOcrEngine(model_dir, max_batch=keras_batch)
    return TesseractEngine(page_timeout=page_timeout)
