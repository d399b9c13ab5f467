"""``python -m bench.signing``: what signing and verifying an event costs, per event.

For each event shape the functions really send (``ocr.requested``, a verification-code
``email.requested``, an ``email.requested`` with 64 KiB of text), in one run:

- sign: build the canonical form (RFC 8785) and sign it (Ed25519), as ``uow.emit`` does;
- verify: what a consumer does before anything else (key lookup, canonical form,
  signature, producer, source and time rules);
- the baseline: reading the structured event off the wire (``parse_structured``), which
  every delivery paid before signatures existed. Ratios are verify / parse and
  (sign + verify) / parse.

Needs no running stack. Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.stats import percentile
from scanline.clock import SystemClock
from scanline.events import Event, new_event, parse_structured
from scanline.payloads import EmailRequested, OcrRequested, Payload
from scanline.signing import EventSigner, EventVerifier, Keyring, TrustedKey, key_id, source_of

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES: dict[str, tuple[Payload, str]] = {
    "ocr.requested": (OcrRequested(bucket="scanline-uploads",
                                   key="uploads/9d2b6c55-52b6-43a5-8d3f-67d1e0f3a0b5/"
                                       "5f0c6bd0-6b55-4f6a-9a52-0a0b3c5c4c1e",
                                   job_id="5f0c6bd0-6b55-4f6a-9a52-0a0b3c5c4c1e",
                                   user_id="9d2b6c55-52b6-43a5-8d3f-67d1e0f3a0b5"), "ocr-jobs"),
    "email.requested (code)": (EmailRequested(
        to="someone@example.com", subject="Your Scanline verification code",
        text="Your Scanline verification code is 123456.\n\nIt expires in 10 minutes.\n"),
        "issue-otp"),
    "email.requested (64 KiB)": (EmailRequested(
        to="someone@example.com", subject="Your OCR result is ready",
        text="The quick brown fox jumps over the lazy dog. " * 1456), "ocr"),
}


def per_call_us(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def measure(repeat: int) -> dict[str, Any]:
    keys = {producer: Ed25519PrivateKey.generate() for _, producer in SHAPES.values()}
    ring = Keyring(TrustedKey(key_id(k.public_key()), p, k.public_key()) for p, k in keys.items())
    verifier = EventVerifier(ring, SystemClock(), max_age=timedelta(days=7))
    rows: dict[str, Any] = {}
    for name, (payload, producer) in SHAPES.items():
        signer = EventSigner(producer, keys[producer])
        unsigned: Event = new_event(payload.TYPE, payload.to_data(), source=source_of(producer),
                                    time=datetime.now(UTC))
        event = signer.sign(unsigned)
        body = event.to_structured()
        received = parse_structured(body)
        results = {"sign": per_call_us(lambda s=signer, u=unsigned: s.sign(u), repeat),
                   "verify": per_call_us(lambda r=received: verifier.verify(r), repeat),
                   "parse (baseline)": per_call_us(lambda b=body: parse_structured(b), repeat)}
        rows[name] = {
            "bytes": len(body),
            **{step: {"p50_us": round(statistics.median(v), 1),
                      "p99_us": round(percentile(v, 0.99), 1)} for step, v in results.items()},
        }
        base = rows[name]["parse (baseline)"]["p50_us"]
        rows[name]["verify_over_parse"] = round(rows[name]["verify"]["p50_us"] / base, 2)
        rows[name]["sign_plus_verify_ms"] = round(
            (rows[name]["sign"]["p50_us"] + rows[name]["verify"]["p50_us"]) / 1000, 3)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signing", description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = measure(args.repeat)
    print(f"{'event':26} {'bytes':>7} {'sign p50':>9} {'verify p50':>11} {'parse p50':>10} "
          f"{'verify/parse':>13} {'sign+verify':>12}")
    for name, row in rows.items():
        print(f"{name:26} {row['bytes']:>7} {row['sign']['p50_us']:>7} µs "
              f"{row['verify']['p50_us']:>8} µs {row['parse (baseline)']['p50_us']:>7} µs "
              f"{row['verify_over_parse']:>12}x {row['sign_plus_verify_ms']:>9} ms")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"signing-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps({"cores": len(os.sched_getaffinity(0)), "repeat": args.repeat,
                                "events": rows}, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
