"""Which engine a process runs: decided in one place from OCR_ENGINE and the weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanline.errors import InvalidInput
from scanline.ocr import models
from scanline.ocr.engines import (
    KERAS_WEIGHTS,
    KerasOcrEngine,
    TesseractEngine,
    build_engine,
    choose_engine,
)
from scanline.ocr.service import OcrService, OcrSettings
from scanline.settings import Settings


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    for name in KERAS_WEIGHTS.values():
        (tmp_path / name).write_bytes(b"h5")
    return tmp_path


def test_auto_takes_keras_ocr_when_its_weights_are_present(weights: Path) -> None:
    assert choose_engine("auto", weights).name == "keras-ocr"


def test_auto_falls_back_to_tesseract_and_says_why(tmp_path: Path) -> None:
    choice = choose_engine("auto", tmp_path)
    assert choice.name == "tesseract" and "no keras-ocr weights" in choice.reason


def test_explicit_choices_are_kept(tmp_path: Path, weights: Path) -> None:
    assert choose_engine("tesseract", weights).name == "tesseract"
    missing = choose_engine("keras-ocr", tmp_path / "nowhere")
    assert missing.name == "keras-ocr" and "MISSING" in missing.reason
    with pytest.raises(ValueError, match="OCR_ENGINE"):
        choose_engine("easyocr", weights)


def test_build_engine_gives_the_chosen_kind(weights: Path) -> None:
    keras = build_engine(choose_engine("auto", weights).name, model_dir=weights, keras_batch=3)
    assert isinstance(keras, KerasOcrEngine) and keras.max_batch == 3 and keras.workers == 1
    tess = build_engine(choose_engine("tesseract", weights).name, model_dir=weights,
                        keras_batch=3)
    assert isinstance(tess, TesseractEngine) and tess.max_batch == 1 and tess.workers >= 1


def test_a_jobs_languages_and_engine_are_checked_against_the_allow_lists() -> None:
    config = OcrSettings.from_settings(Settings.from_env({"OCR_ENGINE": "tesseract"}))
    assert config.languages_of(None) == "eng"
    assert config.languages_of("deu+eng") == "deu+eng"
    for bad in ("klingon", "eng+xx", "eng+eng", "eng++deu", ""):
        with pytest.raises(InvalidInput):
            config.languages_of(bad or "+")
    assert {"eng", "deu", "fra", "spa", "ita", "por"} <= set(config.allowed_languages)
    assert config.engine_of(None) == "auto" and config.engine_of("keras-ocr") == "keras-ocr"
    only = OcrSettings.from_settings(Settings.from_env({"OCR_ENGINE": "tesseract",
                                                        "OCR_ENGINES": "tesseract"}))
    with pytest.raises(InvalidInput, match="not available"):
        only.engine_of("keras-ocr")
    with pytest.raises(InvalidInput, match="English only"):  # at the request, not later
        config.engine_of("keras-ocr", "eng+deu")
    assert config.engine_of("tesseract", "eng+deu") == "tesseract"


def test_auto_sends_documents_and_other_languages_to_tesseract(weights: Path) -> None:
    service = OcrService(OcrSettings.from_settings(Settings.from_env({
        "OCR_ENGINE": "auto", "OCR_MODEL_DIR": str(weights)})))
    assert service.engine_for("auto", languages="eng", document=False) == "keras-ocr"
    assert service.engine_for("auto", languages="eng", document=True) == "tesseract"
    assert service.engine_for(None, languages="deu", document=False) == "tesseract"
    with pytest.raises(InvalidInput, match="English only"):
        service.engine_for("keras-ocr", languages="deu", document=False)


def test_a_job_asking_for_keras_ocr_without_weights_fails_clearly(tmp_path: Path) -> None:
    service = OcrService(OcrSettings.from_settings(Settings.from_env({
        "OCR_ENGINE": "tesseract", "OCR_MODEL_DIR": str(tmp_path)})))
    with pytest.raises(InvalidInput, match="no keras-ocr weights"):
        service.engine_for("keras-ocr", languages="eng", document=False)


def test_settings_read_the_model_dir_from_either_variable(tmp_path: Path) -> None:
    env = {"OCR_ENGINE": "auto", "KERAS_OCR_CACHE_DIR": str(tmp_path)}
    assert OcrSettings.from_settings(Settings.from_env(env)).model_dir == tmp_path
    env["OCR_MODEL_DIR"] = "/models"
    config = OcrSettings.from_settings(Settings.from_env(env))
    assert config.model_dir == Path("/models") and config.engine == "auto"
    assert config.limits.max_bytes == 20 * 1024 * 1024 and config.delete_after_success


def test_one_language_is_read_fast_model_first_and_several_standard_first(
        tmp_path: Path) -> None:
    """Which model reads first and which reads the doubtful words again, from the files
    installed: a language with one model (or the same file twice, like osd) gets no
    second reading."""
    standard, fast = tmp_path / "standard", tmp_path / "fast"
    standard.mkdir()
    fast.mkdir()
    for folder, name, size in ((standard, "eng", 20), (fast, "eng", 4), (standard, "deu", 15),
                               (fast, "deu", 2), (fast, "fra", 1), (standard, "osd", 9),
                               (fast, "osd", 9)):
        (folder / f"{name}.traineddata").write_bytes(b"x" * size)
    found = models.discover(standard=standard, fast=fast, workdir=tmp_path / "links")

    def size(folder: Path | None, lang: str) -> int:
        assert folder is not None
        return (folder / f"{lang}.traineddata").stat().st_size

    assert found.languages == {"eng", "deu", "fra"} and found.both == {"eng", "deu"}
    first, second = found.passes("eng")
    assert (size(first, "eng"), size(second, "eng")) == (4, 20)
    first, second = found.passes("eng+deu")
    assert (size(first, "eng"), size(first, "deu"), size(second, "deu")) == (20, 15, 2)
    assert found.passes("fra") == (found.fast_first, None)
    first, second = found.passes("eng+fra")
    assert (size(first, "eng"), size(second, "eng"), size(second, "fra")) == (20, 4, 1)
    assert second == found.fast_first
    assert found.orientation
