"""``python -m bench.ocr``: the OCR path measured in one run, on the same images.

1. engine time per image, in-process, warm (the floor any deployment can reach);
2. the old design in the same run: the engine constructed for every job (baseline ratio);
3. end-to-end job latency through the running local stack (upload → done seen by the
   client), warm, p50/p95, and its overhead: each job's latency less the engine time the
   function recorded for that very job;
4. throughput with N jobs queued at once vs in-process throughput at the same concurrency,
   with the CPU per job of the ocr function against the in-process CPU per job (the
   function's own efficiency) and the CPU per job of the rest of the stack on the same cores;
5. bytes on the broker per job for 100 KiB, 1 MiB and 10 MiB images vs their base64 size.

Like with like: in-process work per job is what the ocr function does with the bytes it
fetched (``first_page``: check and decode, then recognition through an ``OcrService`` built
from the same settings, so the same batcher, engine and worker count). Both throughput
phases record the share of the machine's CPU that processes outside the stack used
meanwhile (the machine is shared).

The stack must be up (``make up``). ``--keras`` adds in-process keras-ocr figures with
random weights (same compute as the real ones; pretrained weights cannot be fetched here).
Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench.machine import cpu_used, foreign_load, function_pids
from bench.ocr_client import OcrClient
from bench.ocr_samples import Sample, generated, padded_png
from bench.stats import percentile
from scanline.ocr.documents import DocumentLimits
from scanline.ocr.documents import pages as document_pages
from scanline.ocr.engines import Engine, KerasOcrEngine, PageRequest, TesseractEngine
from scanline.ocr.service import OcrService, OcrSettings
from scanline.payloads import OcrRequested
from scanline.settings import Settings
from tests.support.broker import EventTap
from tests.support.outages import program_stopped
from tests.support.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"
LIMITS = DocumentLimits()
# The processes whose CPU is the OCR path's (with the stack's own programs).
INVOLVED = ("ocr", "ocr-jobs", "send-email")
# While jobs drain, the client looks for the results this often (and no faster: its polls
# would otherwise load the cores being measured).
DRAIN_POLL_SECONDS = 0.5


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def first_page(data: bytes, limits: DocumentLimits) -> PageRequest:
    page = next(document_pages(data, limits))
    return PageRequest(page.image, page.dpi)


def engine_ms(engine: Engine, pages: Sequence[PageRequest | Image.Image]) -> list[float]:
    engine.recognize_batch(pages[:1])  # warm
    return [timed(lambda p=page: engine.recognize_batch([p])) for page in pages]


def per_job_engine_ms(make: Callable[[], Engine],
                      pages: Sequence[PageRequest | Image.Image]) -> list[float]:
    """The replaced design: a fresh engine (model) for every job."""
    return [timed(lambda p=page: make().recognize_batch([p])) for page in pages]


def function_service() -> OcrService:
    """The service the ocr function builds, with the stack's tesseract settings."""
    return OcrService(OcrSettings.from_settings(Settings.from_env({"OCR_ENGINE": "tesseract"})))


def in_process_throughput(service: OcrService, samples: Sequence[Sample], jobs: int,
                          concurrency: int) -> dict[str, Any]:
    """The stack's measure in-process: ``jobs`` uploads handled ``concurrency`` at a time
    (the trigger's prefetch), each checked, decoded and recognised as the function does."""
    ends: list[float] = []

    def one(sample: Sample) -> None:
        service.recognize(first_page(sample.data, service.config.limits))
        ends.append(time.perf_counter())

    with foreign_load(os.cpu_count() or 1, None) as foreign, \
            ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, [samples[i % len(samples)] for i in range(jobs)]))
    return {"jobs_per_s": (jobs - 1) / (max(ends) - min(ends)),
            "cpu_ms_per_job": foreign["ours_seconds"] * 1000 / jobs,
            "other_cpu": foreign["share"]}


def stack_latency_ms(client: OcrClient, samples: Sequence[Any],
                     repeat: int) -> tuple[list[float], list[float]]:
    """Each job's latency as the client sees it, and its overhead: that latency less the
    engine time the function itself recorded for the job (so the engine's own variance,
    which is large on a shared machine, does not pass for overhead)."""
    client.wait_done(client.upload(samples[0].data).json()["job_id"])  # warm
    latencies, overheads = [], []
    for sample in [s for _ in range(repeat) for s in samples]:
        started = time.perf_counter()
        job = client.wait_done(client.upload(sample.data, media_type=sample.media_type)
                               .json()["job_id"])
        latency = (time.perf_counter() - started) * 1000
        assert job["status"] == "done", job
        latencies.append(latency)
        overheads.append(latency - job["timings"]["engine_ms"])
    return latencies, overheads


def stack_throughput(stack: Stack, client: OcrClient, samples: Sequence[Sample],
                     jobs: int) -> dict[str, Any]:
    """Steady-state rate of the warm ocr function with ``jobs`` waiting in its queue: the
    trigger is stopped while they are uploaded, then started; (n - 1) / (last - first
    completion). The client polls one job at a time, every ``DRAIN_POLL_SECONDS``, without
    ``wait``. The CPU of the ocr process (tesseract included) and of the rest of the stack
    (its mail chain, broker, S3, PostgreSQL, gateway and the client) is counted per job."""
    with ExitStack() as measuring:
        with program_stopped(stack, "trigger"), ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda i: client.upload(samples[i % len(samples)].data)
                                .json()["job_id"], range(jobs)))
            # Measured from before the trigger starts: it delivers at once, a second
            # before supervisord reports it running.
            foreign = measuring.enter_context(foreign_load(os.cpu_count() or 1, INVOLVED))
            function_cpu = measuring.enter_context(cpu_used(lambda: function_pids("ocr")))
        deadline = time.monotonic() + 300
        for job_id in ids:
            while (client.get(job_id).json()["status"] not in ("done", "failed")
                   and time.monotonic() < deadline):
                time.sleep(DRAIN_POLL_SECONDS)
        time.sleep(DRAIN_POLL_SECONDS)  # the result mails of the last jobs
    done = [client.get(job_id).json() for job_id in ids]
    assert all(job["status"] == "done" for job in done), [j for j in done if j["status"] != "done"]
    ends = sorted(datetime.fromisoformat(job["completed_at"]) for job in done)
    return {"jobs_per_s": (jobs - 1) / (ends[-1] - ends[0]).total_seconds(),
            "cpu_ms_per_job": function_cpu["seconds"] * 1000 / jobs,
            "rest_of_stack_cpu_ms_per_job":
                (foreign["ours_seconds"] - function_cpu["seconds"]) * 1000 / jobs,
            "other_cpu": foreign["share"]}


def broker_bytes(client: OcrClient, tap: EventTap) -> list[dict[str, int]]:
    rows = []
    for size in (100 * 1024, 1024 * 1024, 10 * 1024 * 1024):
        image = padded_png(size)
        with tap.listen(OcrRequested.TYPE) as received:
            job_id = client.upload(image).json()["job_id"]
            received.wait_until(lambda e, j=job_id: e.subject == j, timeout=30)
            raw = next(b for b, e in zip(received.raw, received.events, strict=True)
                       if e.subject == job_id)
        rows.append({"image_bytes": len(image), "message_bytes": len(raw),
                     "base64_bytes": 4 * math.ceil(len(image) / 3)})
    return rows


def keras_figures(images: Sequence[Image.Image]) -> dict[str, Any]:
    import keras_ocr

    directory = Path(tempfile.mkdtemp(prefix="keras-ocr-bench-"))
    paths = KerasOcrEngine.weight_paths(directory)
    keras_ocr.detection.Detector(weights=None).model.save_weights(str(paths["detector"]))
    keras_ocr.recognition.Recognizer(alphabet=keras_ocr.recognition.DEFAULT_ALPHABET,
                                     weights=None).model.save_weights(str(paths["recognizer"]))
    loaded = KerasOcrEngine(directory)
    sample = list(images[:3])
    warm = engine_ms(loaded, sample)
    fresh = per_job_engine_ms(lambda: KerasOcrEngine(directory), sample)
    build = [timed(lambda: KerasOcrEngine(directory).load()) for _ in range(3)]
    batch4 = timed(lambda: loaded.recognize_batch(sample[:1] * 4)) / 4
    return {"engine_ms_p50": statistics.median(warm),
            "engine_per_job_ms_p50": statistics.median(fresh),
            "baseline_ratio": statistics.median(fresh) / statistics.median(warm),
            "batch4_ms_per_image": batch4, "build_and_load_ms_p50": statistics.median(build)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="the trigger's prefetch")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds (in-process, then stack); the best of each counts")
    parser.add_argument("--latency-rounds", type=int, default=3,
                        help="times each sample goes through the stack for the latency figures")
    parser.add_argument("--keras", action="store_true")
    args = parser.parse_args(argv)

    stack = Stack()
    samples = generated()
    pages = [first_page(s.data, LIMITS) for s in samples]
    service = function_service()

    def user() -> OcrClient:
        # One user per phase: a user may start OCR_JOBS_PER_HOUR (100) jobs an hour.
        return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="bench")

    engine = engine_ms(service.engine, pages)
    per_job = per_job_engine_ms(TesseractEngine, pages)
    e2e, overheads = stack_latency_ms(user(), samples, args.latency_rounds)
    # Interleaved rounds, best of each: on a shared machine a single round is as likely to
    # meet someone else's job in one phase as in the other.
    rounds = []
    for _ in range(args.rounds):
        rounds.append({"in_process": in_process_throughput(service, samples, args.jobs,
                                                           args.concurrency),
                       "stack": stack_throughput(stack, user(), samples, args.jobs)})
    local = max((r["in_process"] for r in rounds), key=lambda r: r["jobs_per_s"])
    remote = max((r["stack"] for r in rounds), key=lambda r: r["jobs_per_s"])
    broker = broker_bytes(user(), EventTap(stack.amqp_url))
    p50 = statistics.median(engine)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(), "engine": "tesseract", "images": len(pages),
        "engine_ms": {"p50": p50, "p95": percentile(engine, 0.95)},
        "old_design_engine_per_job_ms": {"p50": statistics.median(per_job),
                                         "ratio": statistics.median(per_job) / p50},
        "e2e_ms": {"p50": statistics.median(e2e), "p95": percentile(e2e, 0.95)},
        "overhead": {"ms_p50": statistics.median(overheads),
                     "ms_p95": percentile(overheads, 0.95),
                     "ratio_p50": statistics.median(e2e) / p50, "jobs": len(e2e)},
        "throughput_jobs_per_s": {"stack": remote["jobs_per_s"],
                                  "in_process": local["jobs_per_s"],
                                  "ratio": remote["jobs_per_s"] / local["jobs_per_s"],
                                  "jobs": args.jobs, "concurrency": args.concurrency,
                                  "workers": service.engine.workers},
        "cpu_ms_per_job": {"ocr_function": remote["cpu_ms_per_job"],
                           "in_process": local["cpu_ms_per_job"],
                           "rest_of_stack": remote["rest_of_stack_cpu_ms_per_job"]},
        "other_cpu": {"stack": remote["other_cpu"], "in_process": local["other_cpu"]},
        "throughput_rounds": rounds,
        "broker_bytes": broker,
    }
    if args.keras:
        report["keras_ocr_random_weights"] = keras_figures([p.image for p in pages])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ocr-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nJSON: {out}")


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("engine in-process, per image (p50 / p95)",
         f"{r['engine_ms']['p50']:.0f} / {r['engine_ms']['p95']:.0f} ms"),
        ("old design: engine built per job (p50, ratio)",
         f"{r['old_design_engine_per_job_ms']['p50']:.0f} ms, "
         f"{r['old_design_engine_per_job_ms']['ratio']:.2f}x"),
        ("end-to-end through the stack (p50 / p95)",
         f"{r['e2e_ms']['p50']:.0f} / {r['e2e_ms']['p95']:.0f} ms"),
        (f"overhead over the job's own engine time (p50 / p95 of {r['overhead']['jobs']})",
         f"{r['overhead']['ms_p50']:.0f} / {r['overhead']['ms_p95']:.0f} ms "
         f"(e2e p50 / engine p50 = {r['overhead']['ratio_p50']:.2f}x)"),
        (f"throughput, {r['throughput_jobs_per_s']['jobs']} jobs queued: stack / in-process, best",
         f"{r['throughput_jobs_per_s']['stack']:.2f} / "
         f"{r['throughput_jobs_per_s']['in_process']:.2f} jobs/s "
         f"= {r['throughput_jobs_per_s']['ratio']:.2f}"),
        ("  CPU per job: ocr function / in-process (ratio); rest of the stack",
         f"{r['cpu_ms_per_job']['ocr_function']:.0f} / {r['cpu_ms_per_job']['in_process']:.0f} ms "
         f"({r['cpu_ms_per_job']['ocr_function'] / r['cpu_ms_per_job']['in_process']:.2f}x); "
         f"{r['cpu_ms_per_job']['rest_of_stack']:.0f} ms"),
        ("  CPU used outside the stack meanwhile: stack / in-process phase",
         f"{r['other_cpu']['stack']:.0%} / {r['other_cpu']['in_process']:.0%}"),
    ]
    for n, one in enumerate(r["throughput_rounds"], 1):
        rows.append((f"  round {n}: stack / in-process (other CPU)",
                     f"{one['stack']['jobs_per_s']:.2f} ({one['stack']['other_cpu']:.0%}) / "
                     f"{one['in_process']['jobs_per_s']:.2f} "
                     f"({one['in_process']['other_cpu']:.0%}) jobs/s"))
    for b in r["broker_bytes"]:
        rows.append((f"broker bytes, {b['image_bytes'] / 1024:.0f} KiB image",
                     f"{b['message_bytes']} B (base64 would be {b['base64_bytes']} B)"))
    if "keras_ocr_random_weights" in r:
        k = r["keras_ocr_random_weights"]
        rows += [("keras-ocr loaded once, per image (p50)", f"{k['engine_ms_p50']:.0f} ms"),
                 ("keras-ocr built per job (old design, p50)",
                  f"{k['engine_per_job_ms_p50']:.0f} ms ({k['baseline_ratio']:.2f}x)"),
                 ("keras-ocr model build + weight load", f"{k['build_and_load_ms_p50']:.0f} ms"),
                 ("keras-ocr batch of 4, per image", f"{k['batch4_ms_per_image']:.0f} ms")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
