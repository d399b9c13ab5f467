"""The OCR settings, and the per-process service the ``ocr`` function recognises with.

Every OCR setting name is spelled in ``OcrSettings.from_settings``. ``OcrService`` picks
the engine once (``choose_engine``), builds it on first use and feeds it through a
``MicroBatcher``; the container holds one service per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from PIL import Image

from scanline.domain.ocr import Recognition
from scanline.ocr.batcher import MicroBatcher
from scanline.ocr.engines import Engine, EngineChoice, build_engine, choose_engine
from scanline.ocr.images import ImageLimits, Page
from scanline.runtime import metrics
from scanline.settings import Settings


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class OcrSettings:
    engine: str
    model_dir: Path
    languages: str
    batch_size: int
    batch_wait: float
    limits: ImageLimits
    delete_after_success: bool
    max_attempts: int
    upload_url_ttl: int
    # How long a claimed job stays the worker's without a renewal (scanline.ocr.lease).
    lease: timedelta = timedelta(seconds=15)
    max_wait_seconds: int = 30

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
            limits=ImageLimits(max_bytes=int(get("OCR_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
                               max_pixels=int(get("OCR_MAX_PIXELS", "40000000")),
                               max_frames=int(get("OCR_MAX_FRAMES", "1"))),
            delete_after_success=_flag(get("OCR_DELETE_AFTER_SUCCESS", "true")),
            max_attempts=int(get("OCR_MAX_ATTEMPTS", "5")),
            upload_url_ttl=int(get("OCR_UPLOAD_URL_TTL", "900")),
            lease=timedelta(seconds=float(get("OCR_LEASE_SECONDS", "15"))),
        )


@dataclass(frozen=True)
class Outcome:
    recognition: Recognition
    engine: str
    batch_size: int
    queued_ms: float
    engine_ms: float


class OcrService:
    def __init__(self, config: OcrSettings) -> None:
        self.config = config
        self.choice: EngineChoice = choose_engine(config.engine, config.model_dir)
        self.engine: Engine = build_engine(self.choice, model_dir=config.model_dir,
                                           languages=config.languages,
                                           keras_batch=config.batch_size)
        self._batcher: MicroBatcher[Page | Image.Image, Recognition] = MicroBatcher(
            self.engine.recognize_batch, max_batch=self.engine.max_batch,
            max_wait=config.batch_wait, workers=self.engine.workers, name="ocr-batch")

    def describe(self) -> str:
        return f"OCR engine {self.choice.name} ({self.choice.reason})"

    def recognize(self, image: Page | Image.Image) -> Outcome:
        batched = self._batcher.submit(image)
        metrics.ocr_page(self.engine.name, batched.run_seconds / max(1, batched.batch_size))
        return Outcome(batched.value, self.engine.name, batched.batch_size,
                       round(batched.queued_seconds * 1000, 1),
                       round(batched.run_seconds * 1000, 1))
