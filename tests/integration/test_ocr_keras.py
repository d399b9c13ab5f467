"""keras-ocr plumbing with random weights saved to .h5 files (the pretrained ones cannot be
downloaded here): weights are read from the model directory, never fetched; the model is
built once per process; concurrent requests reach it as one batch; and it builds in the
environment stack.yml gives the ocr function (TF_USE_LEGACY_KERAS=1 once broke it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.ocr_samples import STYLES, render
from infra.local.stackfile import load
from scanline.ocr.engines import KerasOcrEngine, PageRead
from scanline.ocr.service import OcrService, OcrSettings
from scanline.settings import Settings

keras_ocr = pytest.importorskip("keras_ocr", reason="functions/ocr/requirements.txt not installed")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    directory = tmp_path_factory.mktemp("keras-ocr")
    paths = KerasOcrEngine.weight_paths(directory)
    detector = keras_ocr.detection.Detector(weights=None)
    recognizer = keras_ocr.recognition.Recognizer(
        alphabet=keras_ocr.recognition.DEFAULT_ALPHABET, weights=None)
    detector.model.save_weights(str(paths["detector"]))
    recognizer.model.save_weights(str(paths["recognizer"]))
    return directory, detector.model.get_weights()[:2]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: object) -> str:
        raise AssertionError(f"keras-ocr tried to download {kwargs.get('url')}")

    monkeypatch.setattr(keras_ocr.tools, "download_and_verify", refuse)


def images(n: int) -> list[Image.Image]:
    return [render(f"batch image {i}", STYLES["sans-20"], width=320) for i in range(n)]


def test_weights_come_from_the_directory_and_the_model_is_built_once(
        model_dir: tuple[Path, list[np.ndarray]]) -> None:
    directory, saved = model_dir
    engine = KerasOcrEngine(directory)
    first = engine.recognize_batch(images(2))
    second = engine.recognize_batch(images(1))
    assert engine.loads == 1
    assert len(first) == 2 and len(second) == 1
    assert all(isinstance(r, PageRead) and r.angle == 0 for r in first + second)
    assert all(w.confidence is None for r in first for w in r.recognition.words)
    loaded = engine._pipeline.detector.model.get_weights()[:2]
    assert all(np.array_equal(a, b) for a, b in zip(saved, loaded, strict=True))


def test_missing_weights_are_a_dependency_failure_not_a_download(tmp_path: Path) -> None:
    from scanline.errors import DependencyUnavailable

    with pytest.raises(DependencyUnavailable, match="weights missing"):
        KerasOcrEngine(tmp_path).load()


def test_concurrent_requests_share_one_engine_call(
        model_dir: tuple[Path, list[np.ndarray]]) -> None:
    directory, _ = model_dir
    service = OcrService(OcrSettings.from_settings(Settings.from_env({
        "OCR_ENGINE": "auto", "OCR_MODEL_DIR": str(directory), "OCR_BATCH_SIZE": "4",
        "OCR_BATCH_WAIT_MS": "300"})))
    assert service.choice.name == "keras-ocr"
    calls: list[int] = []
    run = service.engine.recognize_batch

    def counting(batch: Sequence[Image.Image]) -> list[PageRead]:
        calls.append(len(batch))
        return run(batch)

    service.engine.recognize_batch = counting  # type: ignore[method-assign]
    service._batchers["keras-ocr"]._run = counting
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(service.recognize, images(3)))
    assert calls == [3]
    assert [o.batch_size for o in outcomes] == [3, 3, 3]
    assert all(o.engine == "keras-ocr" for o in outcomes)
    assert service.engine.loads == 1  # type: ignore[attr-defined]


def test_keras_ocr_builds_in_the_environment_stack_yml_gives_the_ocr_function(
        model_dir: tuple[Path, list[np.ndarray]]) -> None:
    """A fresh interpreter with the ocr function's environment (TensorFlow reads its
    TF_* variables at import) loads the weights and reads an image."""
    directory, _ = model_dir
    environment = {k: str(v) for k, v in load().functions["ocr"].environment.items()
                   if k.startswith(("TF_", "KERAS", "OMP_"))}
    script = ("import sys; from pathlib import Path; from PIL import Image;"
              "from scanline.ocr.engines import KerasOcrEngine;"
              "e = KerasOcrEngine(Path(sys.argv[1]));"
              "print(len(e.recognize_batch([Image.new('RGB', (64, 32), 'white')])))")
    run = subprocess.run([sys.executable, "-c", script, str(directory)], capture_output=True,
                         text=True, env={**os.environ, **environment}, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0 and run.stdout.strip() == "1", run.stderr[-2000:]
