"""Today's path before documents, kept as the baseline every figure is measured against:
stock Debian tesseract as a process per image (``tesseract stdin stdout``, its ``_fast``
models, English unless told), the upload piped to it as it is, one OpenMP thread."""

from __future__ import annotations

import os
import subprocess

from bench.ocr_samples import Sample

TESSERACT = "tesseract"


def stock_text(data: bytes, languages: str = "eng") -> str:
    run = subprocess.run([TESSERACT, "stdin", "stdout", "-l", languages], input=data,
                         capture_output=True, check=True,
                         env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    return run.stdout.decode("utf-8", errors="replace")


def languages_of(sample: Sample) -> str:
    """The languages a sample is read with: eurotext's six when given, English otherwise."""
    return "eng+deu+fra+ita+spa+por" if sample.name == "eurotext" else (
        "deu" if sample.name == "german" else "eng")
