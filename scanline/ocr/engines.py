"""The OCR engines behind one small protocol, and the one place that picks which to run.

Both engines take decoded RGB images and return text plus words with boxes. The keras-ocr
model is built and its weights are read from a local directory once per process, at first
use, and never downloaded (``Pipeline()`` would fetch them from GitHub on construction).
Tesseract keeps no model in this process; each image is one ``tesseract`` run, so its
"batch" is one image and parallelism comes from running one worker per usable core. A
plain upload is piped to tesseract as it is (leptonica decodes PNG/JPEG/TIFF itself);
only other images are re-encoded, by pytesseract, from their checked RGB pixels.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from scanline.domain.ocr import Recognition, Word, reading_order, rectangle
from scanline.errors import DependencyUnavailable
from scanline.ocr.images import Page, as_page

log = logging.getLogger(__name__)

TESSERACT = "tesseract"
KERAS_OCR = "keras-ocr"
AUTO = "auto"
# The file names keras-ocr itself downloads into its cache (KERAS_OCR_CACHE_DIR).
KERAS_WEIGHTS = {"detector": "craft_mlt_25k.h5", "recognizer": "crnn_kurapan.h5"}


class Engine(Protocol):
    name: str
    # Most images one ``recognize_batch`` call should get, and how many calls may run at once.
    max_batch: int
    workers: int

    def load(self) -> None: ...
    def recognize_batch(self, images: Sequence[Page | Image.Image]) -> list[Recognition]: ...


class TesseractEngine:
    """Debian's tesseract through pytesseract; words and boxes from ``image_to_data``."""

    name = TESSERACT
    max_batch = 1

    def __init__(self, languages: str = "eng", workers: int | None = None) -> None:
        # One OpenMP thread per run: on few cores, parallel runs beat threaded runs.
        os.environ["OMP_THREAD_LIMIT"] = "1"
        self.languages = languages
        # One run per core this process may use (its affinity, which a cpuset narrows).
        self.workers = workers or len(os.sched_getaffinity(0))
        self.version: str | None = None

    def load(self) -> None:
        import pytesseract

        if self.version is None:
            try:
                self.version = str(pytesseract.get_tesseract_version())
            except pytesseract.TesseractNotFoundError as exc:
                raise DependencyUnavailable("tesseract", "the tesseract binary is missing") from exc

    def recognize_batch(self, images: Sequence[Page | Image.Image]) -> list[Recognition]:
        self.load()
        return [self._recognize(as_page(image)) for image in images]

    def _recognize(self, page: Page) -> Recognition:
        import pytesseract

        if page.encoded is not None:
            run = subprocess.run(
                [pytesseract.pytesseract.tesseract_cmd, "stdin", "stdout", "-l", self.languages,
                 "tsv"], input=page.encoded, capture_output=True, check=False)
            if run.returncode == 0:
                tsv = run.stdout.decode("utf-8", errors="replace")
                return _from_tesseract_data(pytesseract.pytesseract.file_to_dict(tsv, "\t", -1))
            # A variant leptonica cannot read: fall back to the pixels Pillow decoded.
            log.warning("tesseract could not read the upload as it is (%s); re-encoding it",
                        run.stderr.decode("utf-8", errors="replace").strip()[-200:])
        data = pytesseract.image_to_data(page.pixels, lang=self.languages,
                                         output_type=pytesseract.Output.DICT)
        return _from_tesseract_data(data)


def _from_tesseract_data(data: dict[str, list[Any]]) -> Recognition:
    """Tesseract's TSV as text (lines in a paragraph on their own line, a blank line
    between paragraphs, as ``tesseract FILE -`` prints them) and words with boxes."""
    words: list[Word] = []
    paragraphs: list[list[list[str]]] = []
    last_par = last_line = None
    for i, text in enumerate(data.get("text", [])):  # no rows at all for an empty page
        text = text.strip()
        if int(data["level"][i]) != 5 or not text:
            continue
        par = (data["block_num"][i], data["par_num"][i])
        line = (*par, data["line_num"][i])
        if par != last_par:
            paragraphs.append([])
        if line != last_line:
            paragraphs[-1].append([])
        paragraphs[-1][-1].append(text)
        last_par, last_line = par, line
        box = rectangle(int(data["left"][i]), int(data["top"][i]),
                        int(data["width"][i]), int(data["height"][i]))
        words.append(Word(text, box))  # type: ignore[arg-type]
    text = "\n\n".join("\n".join(" ".join(line) for line in par) for par in paragraphs)
    return Recognition(text=text, words=words)


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

    def recognize_batch(self, images: Sequence[Page | Image.Image]) -> list[Recognition]:
        import numpy as np

        self.load()
        groups = self._pipeline.recognize(
            [np.asarray(as_page(image).pixels) for image in images],
            detection_kwargs={"verbose": 0}, recognition_kwargs={"verbose": 0})
        results = []
        for group in groups:
            words = [Word(text, tuple((round(float(x)), round(float(y)))  # type: ignore[arg-type]
                                      for x, y in box)) for text, box in group]
            results.append(Recognition(text=reading_order(words), words=words))
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


def build_engine(choice: EngineChoice, *, model_dir: Path, languages: str,
                 keras_batch: int) -> Engine:
    if choice.name == KERAS_OCR:
        return KerasOcrEngine(model_dir, max_batch=keras_batch)
    return TesseractEngine(languages)
