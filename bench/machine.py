"""What else the machine did while a benchmark measured: the CPU share of processes outside
the stack, and how many engine processes ran at once.

Benchmarks here run on a shared 2-core machine next to other people's jobs. Each measured
window records the share of the machine's CPU that went to processes outside the stack
(``foreign_load``); a point with more than a few percent of it is disturbed and says so.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.stack import LOCAL


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def stack_pids(involved: Collection[str]) -> set[int]:
    """This process, the supervisord tree (gateway, trigger, sinks, and the functions named
    in ``involved``) and the PostgreSQL and RabbitMQ servers: everything whose CPU belongs
    to the measurement."""
    parents: dict[int, int] = {}
    users = {pwd.getpwnam(name).pw_uid for name in ("postgres", "rabbitmq")
             if name in {u.pw_name for u in pwd.getpwall()}}
    ours = {os.getpid()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int(_stat(entry.name)[1])
            if entry.stat().st_uid in users:
                ours.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    pid_file = LOCAL / "supervisord.pid"
    tree = {int(pid_file.read_text())} if pid_file.exists() else set()
    while True:
        grown = tree | {pid for pid, parent in parents.items() if parent in tree}
        if grown == tree:
            return ours | {pid for pid in tree if _function_of(pid) in {*involved, None}}
        tree = grown


def function_pids(name: str) -> set[int]:
    """The processes of one function's pod: its watchdog and the function under it (the
    local pod's relays are the stack's own, as a cluster has none)."""
    return {pid for pid in stack_pids({name}) if _function_of(pid) == name}


def _function_of(pid: int) -> str | None:
    """The function a process runs (its build folder), None for the stack's own programs."""
    try:
        # A process whose build folder was laid out again since it started runs in the
        # removed one, which the kernel shows with this suffix.
        cwd = Path(os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)"))
    except OSError:
        return None
    return cwd.name if cwd.parent == LOCAL / "build" else None


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(fields[3]) + int(fields[4])
    return (sum(int(f) for f in fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu(pids: set[int]) -> dict[int, tuple[int, float]]:
    """Start time (ticks after boot) and CPU seconds of each live pid, the latter with the
    children it has waited for, such as tesseract runs."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            stat = _stat(pid)
        except OSError:
            continue
        found[pid] = (int(stat[19]), sum(int(v) for v in stat[11:15]) / tick)
    return found


def _used_since(before: dict[int, tuple[int, float]], after: dict[int, tuple[int, float]],
                since_tick: int) -> float:
    """CPU the processes used between two snapshots: a pid's growth, or all of it for one
    started in between. A process that ended in between is lost (and so counted as
    foreign): restarts during a run inflate the foreign share, never the measured one."""
    used = 0.0
    for pid, (started, cpu) in after.items():
        if pid in before and before[pid][0] == started:
            used += cpu - before[pid][1]
        elif started >= since_tick:
            used += cpu
    return used


def _ticks_since_boot() -> int:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


@contextmanager
def cpu_used(measured: Callable[[], set[int]]) -> Iterator[dict[str, float]]:
    """CPU seconds the processes ``measured()`` names used during the block (with the
    children they waited for), as ``result["seconds"]`` once it ends."""
    result: dict[str, float] = {}
    since = _ticks_since_boot()
    before = process_cpu(measured())
    yield result
    result["seconds"] = _used_since(before, process_cpu(measured() | set(before)), since)


@contextmanager
def foreign_load(cores: int, involved: Collection[str] | None) -> Iterator[dict[str, float]]:
    """Measure the share of the machine used by processes outside the stack meanwhile
    (other users' jobs): a run with more than a few percent of it is disturbed. The CPU
    seconds of the measured processes themselves are ``result["ours_seconds"]``. With
    ``involved=None`` only this process counts as ours (an in-process measurement, which
    anything the stack does meanwhile disturbs too)."""

    def measured() -> set[int]:
        return {os.getpid()} if involved is None else stack_pids(involved)

    result: dict[str, float] = {}
    with cpu_used(measured) as ours:
        machine, began = machine_cpu_seconds(), time.perf_counter()
        yield result
    foreign = machine_cpu_seconds() - machine - ours["seconds"]
    result["ours_seconds"] = ours["seconds"]
    result["share"] = max(0.0, foreign) / (cores * (time.perf_counter() - began))
