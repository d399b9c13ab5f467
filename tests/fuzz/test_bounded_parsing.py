"""Every upload up to the size limit is accepted or refused within 1 s of CPU.

A document's structure is walked only as far as the limits allow (TIFF directories up to
the page limit + 1, a PDF's objects before PDFium opens it), and nothing that will be
refused is decoded. The cost is measured as what it is, CPU seconds of the ocr-jobs
processes (watchdog, function and children), not wall time, so a busy machine does not
decide the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.machine import cpu_used
from bench.ocr_client import OcrClient
from bench.ocr_samples import blank_pages_pdf, chained_tiff
from tests.support.stack import Stack

LIMIT = 20 * 1024 * 1024
DIRECTORY_BYTES = 2 + 6 * 12 + 4  # one chained_tiff page


def _tree(root: int) -> set[int]:
    found, pending = set(), [root]
    while pending:
        pid = pending.pop()
        found.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                pending += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


HOSTILE: dict[str, Callable[[], bytes]] = {
    "TIFF of 20 MiB of chained directories": lambda: chained_tiff(
        (LIMIT - 16) // DIRECTORY_BYTES),
    "PDF of 10,000 pages": lambda: blank_pages_pdf(10_000),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_document_is_refused_within_a_second_of_cpu(
        stack: Stack, fuzz_user: OcrClient, name: str) -> None:
    document = HOSTILE[name]()
    assert len(document) <= LIMIT
    root = int(stack.supervisorctl("pid", "ocr-jobs").strip())
    with cpu_used(lambda: _tree(root)) as spent:
        r = fuzz_user.upload(document, "scan.tiff", "application/octet-stream")
    assert r.status_code in (413, 415, 422), r.text
    assert spent["seconds"] < 1.0, (name, spent)
