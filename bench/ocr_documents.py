"""``python -m bench.ocr_documents``: accuracy, speed and memory of the document OCR path,
against today's path before it (stock tesseract, a process per image: ``bench.ocr_baseline``)
measured in the same run on the same files. No stack needed: it is the engine in-process.

1. word recall and time per image, ours and stock, per set: generated images (five clean,
   five with one degradation each; the clean ones' recall is also given alone), clean
   small print at 11-18 px,
   degraded synthetic scans (speckle, blur, 2-3° skew, JPEG q30-75, five fonts, 20-40 px),
   the four real scans (eurotext with its six languages), a German page (``deu``), pages
   turned 90/180/270°;
2. the speed ratio on the bench images (generated + degraded): median of ours / stock per
   image, both on one core, one image at a time;
3. a 300-dpi US-letter page on one core, and pages per second per core with one engine
   worker per core (the ocr function's setting) on letter pages;
4. RSS of an ocr worker process (a fresh interpreter that builds the service and reads a
   letter page: peak and after);
5. CPU to accept or refuse hostile documents up to the upload limit (``inspect`` only).

Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench.ocr_baseline import languages_of, stock_text
from bench.ocr_samples import (
    STYLES,
    Sample,
    blank_pages_pdf,
    chained_tiff,
    degraded,
    generated,
    german,
    letter_page,
    scans,
    small_print,
    word_recall,
)
from scanline.errors import ScanlineError
from scanline.ocr.documents import DocumentLimits, inspect, pages
from scanline.ocr.engines import PageRead, PageRequest, TesseractEngine

RESULTS = Path(__file__).resolve().parent / "results"
LIMITS = DocumentLimits()
GENERATED = "generated (5 clean, 5 degraded once)"


def _seconds(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def ours(engine: TesseractEngine, sample: Sample, languages: str | None = None) -> PageRead:
    """What the ocr function does with an upload's bytes: decode the page, read it."""
    page = next(pages(sample.data, LIMITS))
    request = PageRequest(page.image, page.dpi, languages or languages_of(sample))
    return engine.recognize_batch([request])[0]


def compare(engine: TesseractEngine, samples: list[Sample]) -> dict[str, Any]:
    rows = []
    for sample in samples:
        read, seconds = _seconds(lambda s=sample: ours(engine, s))
        stock, stock_seconds = _seconds(lambda s=sample: stock_text(s.data, languages_of(s)))
        rows.append({"name": sample.name, "recall": word_recall(sample.truth,
                                                                 read.recognition.text),
                     "stock_recall": word_recall(sample.truth, stock), "ms": seconds * 1000,
                     "stock_ms": stock_seconds * 1000, "steps": list(read.steps)})
    return {"samples": rows,
            "recall": statistics.mean(r["recall"] for r in rows),
            "stock_recall": statistics.mean(r["stock_recall"] for r in rows),
            "ms_p50": statistics.median(r["ms"] for r in rows),
            "stock_ms_p50": statistics.median(r["stock_ms"] for r in rows),
            "ratio_p50": statistics.median(r["ms"] / r["stock_ms"] for r in rows)}


def turned(engine: TesseractEngine) -> list[dict[str, Any]]:
    rows = []
    for sample in (scans()[0], generated()[0], degraded()[0]):
        for turn in (90, 180, 270):
            image = Image.open(io.BytesIO(sample.data)).rotate(turn, expand=True)
            read = engine.recognize_batch([PageRequest(image, None, "eng")])[0]
            rows.append({"name": f"{sample.name} turned {turn}", "angle": read.angle,
                         "expected_angle": (360 - turn) % 360,
                         "recall": word_recall(sample.truth, read.recognition.text)})
    return rows


def letter(engine: TesseractEngine, rounds: int) -> dict[str, Any]:
    sample = letter_page()
    times, stock_times, read = [], [], None
    for _ in range(rounds):
        read, seconds = _seconds(lambda: ours(engine, sample))
        times.append(seconds)
        stock_times.append(_seconds(lambda: stock_text(sample.data))[1])
    assert read is not None
    workers = len(os.sched_getaffinity(0))
    parallel = TesseractEngine(workers=workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: ours(parallel, sample), range(workers)))  # warm each thread
        count = 2 * workers * rounds
        _, seconds = _seconds(lambda: list(pool.map(lambda _: ours(parallel, sample),
                                                    range(count))))
    return {"seconds_p50": statistics.median(times), "stock_seconds_p50":
            statistics.median(stock_times), "recall": word_recall(sample.truth,
                                                                  read.recognition.text),
            "pages_per_second": count / seconds, "workers": workers,
            "pages_per_second_per_core": count / seconds / workers}


def rss_probe() -> None:
    """Run in a fresh interpreter: the ocr function's service, one letter page read."""
    from scanline.ocr.service import OcrService, OcrSettings
    from scanline.settings import Settings

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    before = status("VmRSS:")
    service = OcrService(OcrSettings.from_settings(Settings.from_env({"OCR_ENGINE": "tesseract"})))
    sample = letter_page()
    page = next(pages(sample.data, LIMITS))
    service.recognize(PageRequest(page.image, page.dpi, "eng"), "tesseract")
    print(json.dumps({"rss_start": before, "rss_after": status("VmRSS:"),
                      "rss_peak": status("VmHWM:")}))


def hostile() -> list[dict[str, Any]]:
    """CPU to inspect documents that try to exhaust the limits, up to the upload size."""
    limit = LIMITS.max_bytes
    per_directory = len(chained_tiff(2)) - len(chained_tiff(1))
    filled = max(1, (limit - 200) // per_directory)
    cases = {
        f"TIFF of {filled} chained directories ({limit >> 20} MiB)": chained_tiff(filled),
        "TIFF whose directories loop": chained_tiff(4, loop=True),
        "PDF of 10,000 pages": blank_pages_pdf(10_000),
        "PDF of 190,000 pages (20 MiB)": blank_pages_pdf(190_000),
        "PDF of 190,000 pages, no xref (PDFium would rebuild it)":
            blank_pages_pdf(190_000).replace(b"startxref", b"startxrXX"),
        "PDF of 99,000 pages, no xref (PDFium rebuilds it)":
            blank_pages_pdf(99_000).replace(b"startxref", b"startxrXX"),
        "PDF page of 100,000 x 100,000 points": blank_pages_pdf(1, 100_000, 100_000),
    }
    rows = []
    for name, data in cases.items():
        started = time.process_time()
        try:
            inspect(data, LIMITS)
            outcome = "accepted"
        except ScanlineError as exc:
            outcome = f"{exc.status} {exc.detail[:60]}"
        rows.append({"name": name, "bytes": len(data), "outcome": outcome,
                     "cpu_ms": (time.process_time() - started) * 1000})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr_documents")
    parser.add_argument("--rounds", type=int, default=3, help="letter page repetitions")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        rss_probe()
        return
    os.environ["OMP_THREAD_LIMIT"] = "1"
    engine = TesseractEngine(workers=1)
    ours(engine, generated()[0])  # warm: models loaded once per process, as in the function
    sets = {GENERATED: generated(), "small print (11-18 px, clean)": small_print(),
            "degraded": degraded(), "real scans": scans(),
            "German (deu)": [german()]}
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(),
                              "tesseract": engine.version,
                              "sets": {name: compare(engine, samples)
                                       for name, samples in sets.items()}}
    bench_rows = report["sets"][GENERATED]["samples"] + report["sets"]["degraded"]["samples"]
    report["clean_text_recall"] = statistics.mean(
        r["recall"] for r in report["sets"][GENERATED]["samples"] if STYLES[r["name"]].clean)
    report["bench_images"] = {
        "ratio_p50": statistics.median(r["ms"] / r["stock_ms"] for r in bench_rows),
        "ms_p50": statistics.median(r["ms"] for r in bench_rows),
        "stock_ms_p50": statistics.median(r["stock_ms"] for r in bench_rows),
        "recall": statistics.mean(r["recall"] for r in bench_rows),
        "stock_recall": statistics.mean(r["stock_recall"] for r in bench_rows)}
    report["turned"] = turned(engine)
    report["letter"] = letter(engine, args.rounds)
    probe = subprocess.run([sys.executable, "-m", "bench.ocr_documents", "--rss-probe"],
                           capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[1])
    report["worker_rss"] = json.loads(probe.stdout.strip().splitlines()[-1])
    report["hostile"] = hostile()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ocr-documents-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nJSON: {out}")


def print_table(r: dict[str, Any]) -> None:
    rows = [("set", "word recall: ours / stock; ms per image p50: ours / stock")]
    for name, s in r["sets"].items():
        rows.append((name, f"{s['recall']:.3f} / {s['stock_recall']:.3f}; "
                           f"{s['ms_p50']:.0f} / {s['stock_ms_p50']:.0f} ms"))
        if name == GENERATED:
            rows.append(("  its clean ones", f"{r['clean_text_recall']:.3f}"))
    for sample in r["sets"]["real scans"]["samples"]:
        rows.append((f"  {sample['name']}", f"{sample['recall']:.3f} / "
                                            f"{sample['stock_recall']:.3f}"))
    b = r["bench_images"]
    rows.append(("bench images (generated + degraded): time ours / stock, p50 of per-image ratios",
                 f"{b['ratio_p50']:.2f}x ({b['ms_p50']:.0f} / {b['stock_ms_p50']:.0f} ms), "
                 f"recall {b['recall']:.3f} / {b['stock_recall']:.3f}"))
    good = sum(t["angle"] == t["expected_angle"] for t in r["turned"])
    rows.append(("turned pages: angle right, mean recall",
                 f"{good}/{len(r['turned'])}, "
                 f"{statistics.mean(t['recall'] for t in r['turned']):.3f}"))
    letter_ = r["letter"]
    rows.append(("300-dpi letter page, one core: ours / stock (recall)",
                 f"{letter_['seconds_p50']:.2f} / {letter_['stock_seconds_p50']:.2f} s "
                 f"({letter_['recall']:.3f})"))
    rows.append((f"letter pages per second, {letter_['workers']} workers (per core)",
                 f"{letter_['pages_per_second']:.2f} ({letter_['pages_per_second_per_core']:.2f})"))
    rss = r["worker_rss"]
    rows.append(("ocr worker RSS: start / after a letter page / peak",
                 f"{rss['rss_start'] >> 20} / {rss['rss_after'] >> 20} / "
                 f"{rss['rss_peak'] >> 20} MiB"))
    for h in r["hostile"]:
        rows.append((f"hostile: {h['name']}", f"{h['cpu_ms']:.0f} ms CPU, {h['outcome']}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
