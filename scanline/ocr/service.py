"""The OCR settings, and the per-process service the ``ocr`` function recognises with.

Every OCR setting name is spelled in ``OcrSettings.from_settings``. ``OcrService`` resolves
a job's engine (``engine_for``), builds each engine on first use and feeds it through its
own ``MicroBatcher``; the container holds one service per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from PIL import Image

from scanline.errors import InvalidInput
from scanline.ocr.batcher import MicroBatcher
from scanline.ocr.documents import DocumentLimits
from scanline.ocr.engines import (
    AUTO,
    KERAS_OCR,
    TESSERACT,
    Engine,
    EngineChoice,
    KerasOcrEngine,
    PageRead,
    PageRequest,
    build_engine,
    choose_engine,
)
from scanline.runtime import metrics
from scanline.settings import Settings


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _names(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip().lower() for n in value.replace("+", ",").split(",")
                               if n.strip()))


@dataclass(frozen=True)
class OcrSettings:
    engine: str
    model_dir: Path
    languages: str  # a job's languages when it names none
    batch_size: int
    batch_wait: float
    limits: DocumentLimits
    delete_after_success: bool
    max_attempts: int
    # How long a claimed job stays the worker's without a renewal (scanline.ocr.lease).
    lease: timedelta = timedelta(seconds=15)
    # What a job may ask for: the languages whose models the deployment installs, and the
    # engines its ocr image has (keras-ocr needs its weights baked in).
    allowed_languages: tuple[str, ...] = ("eng", "deu", "fra", "spa", "ita", "por")
    allowed_engines: tuple[str, ...] = (TESSERACT, KERAS_OCR)
    max_languages: int = 6
    page_timeout: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OcrSettings:
        get = settings.get
        model_dir = (get("OCR_MODEL_DIR") or get("KERAS_OCR_CACHE_DIR")
                     or str(Path.home() / ".keras-ocr"))
        return cls(
            engine=settings.ocr_engine,
            model_dir=Path(model_dir),
            languages=get("OCR_LANGUAGES", "eng"),
            batch_size=int(get("OCR_BATCH_SIZE", "4")),
            batch_wait=int(get("OCR_BATCH_WAIT_MS", "5")) / 1000,
            limits=DocumentLimits(
                max_bytes=int(get("OCR_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
                max_pages=int(get("OCR_MAX_PAGES", "50")),
                max_pixels=int(get("OCR_MAX_PIXELS", "40000000")),
                max_total_pixels=int(get("OCR_MAX_TOTAL_PIXELS", "500000000")),
                render_dpi=int(get("OCR_PDF_DPI", "300"))),
            delete_after_success=_flag(get("OCR_DELETE_AFTER_SUCCESS", "true")),
            max_attempts=int(get("OCR_MAX_ATTEMPTS", "5")),
            lease=timedelta(seconds=float(get("OCR_LEASE_SECONDS", "15"))),
            allowed_languages=_names(get("OCR_ALLOWED_LANGUAGES", "eng,deu,fra,spa,ita,por")),
            allowed_engines=_names(get("OCR_ENGINES", f"{TESSERACT},{KERAS_OCR}")),
            page_timeout=float(get("OCR_PAGE_TIMEOUT_SECONDS", "120")),
        )

    def languages_of(self, requested: str | None) -> str:
        """A job's ``languages`` (``eng+deu``) checked against the allow-list; 422 if not."""
        names = [n.strip() for n in (requested or self.languages).split("+")]
        unknown = [n for n in names if n not in self.allowed_languages]
        if unknown or not all(names):
            raise InvalidInput(f"unknown language {'+'.join(unknown) or requested!r}; "
                               f"choose from {', '.join(self.allowed_languages)}, joined "
                               f"with + (e.g. eng+deu)")
        if len(set(names)) != len(names) or len(names) > self.max_languages:
            raise InvalidInput(f"name each language once, at most {self.max_languages}")
        return "+".join(names)

    def engine_of(self, requested: str | None, languages: str = "eng") -> str:
        """A job's ``engine`` checked against the allow-list and its ``languages``; 422 if
        it cannot be run, at the request, not after the job was queued and counted."""
        engine = (requested or AUTO).strip().lower()
        if engine != AUTO and engine not in self.allowed_engines:
            raise InvalidInput(f"engine {engine!r} is not available here; choose "
                               f"{', '.join((AUTO, *self.allowed_engines))}")
        if engine == KERAS_OCR and languages != "eng":
            raise InvalidInput("keras-ocr reads English only; ask for engine tesseract or auto")
        return engine


@dataclass(frozen=True)
class Outcome:
    read: PageRead
    engine: str
    batch_size: int
    queued_ms: float
    engine_ms: float


class OcrService:
    def __init__(self, config: OcrSettings) -> None:
        self.config = config
        self.choice: EngineChoice = choose_engine(config.engine, config.model_dir)
        self._engines: dict[str, Engine] = {}
        self._batchers: dict[str, MicroBatcher[PageRequest | Image.Image, PageRead]] = {}

    @property
    def engine(self) -> Engine:
        """The deployment's own choice (``OCR_ENGINE``)."""
        return self.engine_named(self.choice.name)

    def engine_named(self, name: str) -> Engine:
        if name not in self._engines:
            engine = build_engine(name, model_dir=self.config.model_dir,
                                  keras_batch=self.config.batch_size,
                                  page_timeout=self.config.page_timeout)
            self._engines[name] = engine
            self._batchers[name] = MicroBatcher(
                engine.recognize_batch, max_batch=engine.max_batch,
                max_wait=self.config.batch_wait, workers=engine.workers,
                name=f"ocr-{name}")
        return self._engines[name]

    def describe(self) -> str:
        return f"OCR engine {self.choice.name} ({self.choice.reason})"

    def engine_for(self, requested: str | None, *, languages: str, document: bool) -> str:
        """The engine that runs a job. ``auto`` is the deployment's choice, except that
        keras-ocr reads neither documents of several pages nor languages other than English
        (its alphabet is lower-case Latin letters and digits): those go to tesseract. A job
        that names keras-ocr where its weights are missing fails at once, clearly."""
        engine = (requested or AUTO).lower()
        if engine == AUTO:
            engine = self.choice.name
            if engine == KERAS_OCR and (document or languages != "eng"):
                engine = TESSERACT
        if engine == KERAS_OCR:
            if languages != "eng":
                raise InvalidInput("keras-ocr reads English only; ask for engine tesseract")
            if not KerasOcrEngine.weights_present(self.config.model_dir):
                if self.choice.name == KERAS_OCR:
                    return KERAS_OCR  # the deployment itself is broken: fail loudly (503s)
                raise InvalidInput("this deployment has no keras-ocr weights; ask for "
                                   "engine tesseract or auto")
        return engine

    def recognize(self, request: PageRequest | Image.Image, engine: str | None = None) -> Outcome:
        name = engine or self.choice.name
        self.engine_named(name)
        batched = self._batchers[name].submit(request)
        metrics.ocr_page(name, batched.run_seconds / max(1, batched.batch_size))
        return Outcome(batched.value, name, batched.batch_size,
                       round(batched.queued_seconds * 1000, 1),
                       round(batched.run_seconds * 1000, 1))
