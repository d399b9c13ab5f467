"""Register and login throughput against the running local stack, with the raw hash time.

    .venv/bin/python -m bench.auth [--duration 8] [--clients 1,4,16] [--rounds 3] [--out FILE]

For each operation and each number of concurrent clients the clients send requests
back to back through the gateway for ``--duration`` seconds (after a warm-up); the table
gives throughput, p50 and p95 latency, and the efficiency ratio

    throughput / (cores / hash time)

where ``hash time`` is the CPU time of one argon2id hash with the deployed parameters,
measured in this process in the same run: before every point, and the run's median is used.
On this shared VM the CPU time of a lone hash drifts between ≈ 150 and ≈ 215 ms within
minutes, so a single sample taken at one moment moves every ratio by up to a tenth; the
points are likewise measured ``--rounds`` times, the rounds interleaved, and the table gives
each point's median round (and the lowest and highest ratio of its rounds). Password hashing
is the floor of both operations, so a ratio of 1.0 means every core does nothing but hash;
issue 3 asks for at least 0.9 at 4 and 16 clients. Results go to stdout (a Markdown table)
and to a JSON file.

Registration is measured twice. ``register+pipeline``: as the stack runs, so the mail each
registration causes (trigger -> issue-otp -> send-email -> SMTP sink, and RabbitMQ) is
processed on the same cores meanwhile. ``register alone``: the function by itself, as in a
deployment where those consumers run on other pods: the trigger program is paused (the
events wait durably in their quorum queues; issue-otp and send-email stay up), then
restarted, and the run only counts if every registration's OTP mail then reaches the sink.
After every registration point the bench waits for those mails, so that no point pays for the
previous one's backlog. The ratio goal is checked on ``register alone`` and ``token``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.machine import foreign_load
from bench.stats import percentile
from scanline.domain import passwords
from scanline.domain.passwords import PasswordHasher
from tests.support.clients import loopback_address
from tests.support.mailbox import Mailbox
from tests.support.stack import LOCAL, Stack

PASSWORD = "bench password that is long enough"
REQUESTS_PER_CONNECTION = 20
# The functions a registration or a login keeps busy (the mail chain included).
INVOLVED = {"register", "issue-otp", "verify-otp", "token", "send-email"}
Request = Callable[[http.client.HTTPConnection], int]
OTP_SUBJECT = "verification code"
# How long the queued mail of a paused pipeline may take to arrive once it runs again.
DRAIN_TIMEOUT = 300.0


@dataclass
class Run:
    operation: str
    clients: int
    requests: int
    errors: dict[str, int]
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    hash_seconds: float  # one lone hash, measured right before this run
    ratio: float  # against the run's median hash time (set once every round is done)
    foreign_cpu: float  # share of the machine used by other processes meanwhile
    pipeline: str = "running"  # "paused": the trigger was stopped (register alone)


def measure_hash(samples: int = 7) -> float:
    """Median CPU seconds of one hash with the deployed parameters (CPU time, so that other
    processes running meanwhile do not inflate it, and with it the ratio)."""
    hasher = PasswordHasher()
    times = []
    for _ in range(samples):
        started = time.thread_time()
        hasher.hash(PASSWORD)
        times.append(time.thread_time() - started)
    return statistics.median(times)


def call(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str) -> int:
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    response.read()
    return response.status


class Registrations:
    """Register a new address per request, remembering those the function accepted (so
    that their verification mails can be checked for afterwards)."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    def __call__(self, conn: http.client.HTTPConnection) -> int:
        email = f"bench-{uuid.uuid4().hex}@example.com"
        body = {"name": "Bench", "email": email, "password": PASSWORD}
        status = call(conn, "/function/register", json.dumps(body).encode(), "application/json")
        if status == 202:
            self.accepted.append(email)  # list.append is atomic: no lock needed
        return status


@contextmanager
def pipeline_paused(stack: Stack) -> Iterator[None]:
    """Stop the trigger (the RabbitMQ -> function deliveries) for the block; always start
    it again. Events emitted meanwhile wait in their durable quorum queues."""
    stack.stop_program("trigger")
    try:
        yield
    finally:
        stack.start_program("trigger")


def await_mails(mail_dir: Path, addresses: list[str], since_ns: int,
                timeout: float = DRAIN_TIMEOUT) -> tuple[int, float]:
    """Wait until each address got its verification mail in a file the sink wrote after
    ``since_ns`` (its names start with the time in ns); how many arrived and how long the
    drain took. Reads only the headers of new files."""
    wanted, seen, arrived = set(addresses), set(), set()
    marker = f"{since_ns:020d}"
    started = time.monotonic()
    while wanted - arrived and time.monotonic() - started < timeout:
        for path in sorted(mail_dir.glob("*.eml")):
            if path.name < marker or path.name in seen:
                continue
            seen.add(path.name)
            with suppress(OSError):
                head = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
                to = re.search(r"^To: *(\S+)", head, re.MULTILINE | re.IGNORECASE)
                if to and OTP_SUBJECT in head and to.group(1).lower() in wanted:
                    arrived.add(to.group(1).lower())
        time.sleep(0.5)
    return len(arrived & wanted), time.monotonic() - started


def login_as(email: str) -> Request:
    form = urlencode({"grant_type": "password", "username": email,
                      "password": PASSWORD}).encode()
    return lambda conn: call(conn, "/function/token", form,
                             "application/x-www-form-urlencoded")


def load(gateway: str, request: Request, clients: int, duration: float,
         warmup: float) -> tuple[list[float], Counter[str]]:
    """Latencies of the successful requests that ended inside the measured window of
    ``duration`` seconds, and the failures that ended there by status ("0": no answer).

    Counting by end time is what makes the figure a steady-state rate at any concurrency:
    counting the requests that *began* in the window misses those the warm-up left in
    flight, whose hashing fills the window's first latency (≈ 1.4 s at 16 clients, a sixth
    of an 8 s window), and the clients keep sending until the window is over, so it is
    full of work to its end."""
    parts = urlsplit(gateway)
    start = time.perf_counter() + warmup
    end = start + duration
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def connect() -> http.client.HTTPConnection:
        # Many clients, as in production: each connection comes from a loopback address
        # of its own (random, so no later point or run reuses one), so the per-client
        # limits (register: 30 an hour) throttle no one, while every check still runs.
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60,
                                          source_address=(loopback_address(), 0))

    def client() -> None:
        conn, sent = connect(), 0
        while (began := time.perf_counter()) < end:
            if sent == REQUESTS_PER_CONNECTION:
                conn.close()
                conn, sent = connect(), 0
            sent += 1
            try:
                status = request(conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            ended = time.perf_counter()
            if start <= ended <= end:
                with lock:
                    if 200 <= status < 300:
                        latencies.append(ended - began)
                    else:
                        errors[str(status)] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def verified_user(gateway: str) -> str:
    """Register a user and verify it with the code the mail sink received."""
    parts = urlsplit(gateway)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    email = f"bench-login-{uuid.uuid4().hex[:10]}@example.com"
    body = json.dumps({"name": "Bench", "email": email, "password": PASSWORD}).encode()
    assert call(conn, "/function/register", body, "application/json") == 202
    mail = Mailbox(LOCAL / "mail").wait_for(to=email, subject="verification code", timeout=30)
    code = re.search(r"code is (\d{6})", mail.get_content())
    assert code, "no code in the verification mail"
    body = json.dumps({"email": email, "otp": code.group(1), "password": PASSWORD}).encode()
    assert call(conn, "/function/verify-otp", body, "application/json") == 200
    return email


def measure(name: str, gateway: str, request: Request, clients: int, args: argparse.Namespace,
            cores: int, pipeline: str = "running") -> Run:
    hash_seconds = measure_hash()
    with foreign_load(cores, INVOLVED) as foreign:
        latencies, errors = load(gateway, request, clients, args.duration, args.warmup)
    throughput = len(latencies) / args.duration
    return Run(name, clients, len(latencies), dict(errors), args.duration,
               round(throughput, 2), round(percentile(latencies, 0.5) * 1000, 1),
               round(percentile(latencies, 0.95) * 1000, 1), round(hash_seconds, 4), 0.0,
               round(foreign["share"], 3), pipeline)


def parallel_hash_rate(cores: int, per_thread: int = 8) -> float:
    """Hashes per second with one thread hashing per core in this process and nothing else:
    the ceiling of any request path on this machine. Memory-hard hashes running side by side
    share the cache and memory bandwidth, so this is below cores / (one lone hash's time)."""
    hasher = PasswordHasher(concurrency=cores)
    threads = [threading.Thread(target=lambda: [hasher.hash(PASSWORD) for _ in range(per_thread)])
               for _ in range(cores)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return cores * per_thread / (time.perf_counter() - started)


class Drains:
    """Every accepted registration's OTP mail must reach the sink: checked after each
    registration point, which also lets the mail chain finish before the next point."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self.registrations = self.arrived = 0
        self.slowest = 0.0

    def check(self, registrations: Registrations, since_ns: int) -> None:
        arrived, took = await_mails(self.mail_dir, registrations.accepted, since_ns)
        self.registrations += len(registrations.accepted)
        self.arrived += arrived
        self.slowest = max(self.slowest, round(took, 1))


def register_points(stack: Stack, args: argparse.Namespace, counts: list[int], cores: int,
                    drains: Drains, paused: bool) -> list[Run]:
    """One round of registration points, with the trigger paused for ``register alone``
    (started again, whatever happens, before the mails are awaited)."""
    name = "register alone" if paused else "register+pipeline"
    runs = []
    for clients in counts:
        registrations, since = Registrations(), time.time_ns()
        with pipeline_paused(stack) if paused else nullcontext():
            runs.append(measure(name, args.gateway, registrations, clients, args, cores,
                                pipeline="paused" if paused else "running"))
        drains.check(registrations, since)
    return runs


@dataclass
class Point:
    """One operation at one concurrency over all rounds: the median round, and the range."""
    median: Run
    lowest: float
    highest: float


def points_of(runs: list[Run]) -> list[Point]:
    by_point: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        by_point.setdefault((run.operation, run.clients), []).append(run)
    found = []
    for rounds in by_point.values():
        ordered = sorted(rounds, key=lambda r: r.ratio)
        found.append(Point(ordered[(len(ordered) - 1) // 2], ordered[0].ratio,
                           ordered[-1].ratio))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/auth.json"))
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    counts = [int(c) for c in args.clients.split(",")]
    stack = Stack()

    login = login_as(verified_user(args.gateway))
    drains = Drains(stack.mail_dir)
    runs: list[Run] = []
    ceilings: list[float] = []
    for _ in range(args.rounds):
        runs += register_points(stack, args, counts, cores, drains, paused=False)
        runs += register_points(stack, args, counts, cores, drains, paused=True)
        runs += [measure("token", args.gateway, login, clients, args, cores)
                 for clients in counts]
        ceilings.append(parallel_hash_rate(cores))
    hashes = [r.hash_seconds for r in runs]
    hash_time = statistics.median(hashes)
    for run in runs:
        run.ratio = round(run.throughput / (cores / hash_time), 3)
    ceiling = statistics.median(ceilings)
    points = points_of(runs)

    params = (f"argon2id m={passwords.MEMORY_KIB // 1024} MiB, t={passwords.TIME_COST}, "
              f"p={passwords.PARALLELISM}")
    print(f"\n{params}; lone hash {hash_time * 1000:.0f} ms (median of {len(hashes)}, "
          f"range {min(hashes) * 1000:.0f}-{max(hashes) * 1000:.0f}); {cores} cores -> ideal "
          f"{cores / hash_time:.1f} hashes/s; {cores} hashing at once in-process, nothing "
          f"else running: {ceiling:.1f} hashes/s = ratio {ceiling / (cores / hash_time):.2f} "
          f"(the machine's ceiling; median of {len(ceilings)})\n")
    print("| operation | clients | req/s | p50 ms | p95 ms | errors | ratio | rounds' range "
          "| other CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for point in points:
        r = point.median
        print(f"| {r.operation} | {r.clients} | {r.throughput:.1f} | {r.p50_ms:.0f} | "
              f"{r.p95_ms:.0f} | {sum(r.errors.values())} | {r.ratio:.2f} | "
              f"{point.lowest:.2f}-{point.highest:.2f} | {r.foreign_cpu:.0%} |")
    lost = drains.registrations - drains.arrived
    print(f"\nafter each registration point: {drains.arrived} of {drains.registrations} OTP "
          f"mails arrived (slowest drain {drains.slowest} s)"
          + (f" -- {lost} MISSING" if lost else ""))
    for r in runs:
        if r.errors:
            print(f"{r.operation} x{r.clients}: failures by status {r.errors}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "cores": cores,
        "machine": platform.platform(), "python": sys.version.split()[0],
        "argon2": {"memory_kib": passwords.MEMORY_KIB, "time_cost": passwords.TIME_COST,
                   "parallelism": passwords.PARALLELISM},
        "hash_seconds": hash_time, "hash_seconds_range": [min(hashes), max(hashes)],
        "parallel_hashes_per_second": ceiling, "ceiling_ratio": ceiling / (cores / hash_time),
        "duration_seconds": args.duration, "rounds": args.rounds,
        "points": [asdict(p) for p in points],
        "runs": [asdict(r) for r in runs],
        "mails": {"registrations": drains.registrations, "arrived": drains.arrived,
                  "slowest_drain_seconds": drains.slowest},
    }, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    # The goal is the functions' own throughput: register+pipeline shares the cores with
    # the mail chain it causes, which a deployment runs on other pods.
    gated = [p.median for p in points if p.median.operation != "register+pipeline"]
    failing = [r for r in runs if r.errors] + [
        r for r in gated if r.clients >= 4 and r.ratio < 0.9]
    return 1 if failing or lost else 0


if __name__ == "__main__":
    sys.exit(main())
