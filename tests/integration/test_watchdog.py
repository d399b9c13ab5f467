"""A function behind the real of-watchdog, in a pod of its own (``infra.local.pod``), as the
local stack runs every function when the binary is there and as a cluster runs it.

The watchdog is the one CI has (``../shared/tools/bin/of-watchdog``), started with the
template Dockerfile's environment and the function's own: ``/_/health`` is the watchdog's,
``/_/ready`` the function's (``ready_path``: 503 while its database is unreachable), a
request over ``exec_timeout`` is cut off with 504, one over ``max_inflight`` refused with
429, and a second pod runs beside the first although both watchdogs bind :8081.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from infra.local import paths
from infra.local.build import build_context
from infra.local.environment import metrics_port
from infra.local.pod import WATCHDOG_ENV, pods_possible
from infra.local.stackfile import Function, Stack, load
from tests.support.stack import Stack as StackProcess
from tests.support.tcpproxy import free_port

HANDLER = Path(__file__).resolve().parents[1] / "support" / "watchdog_function"
NAME = "watchdog-check"
ENVIRONMENT = {"FUNCTION_NAME": NAME, "ready_path": "/_/ready", "exec_timeout": "2s",
               "read_timeout": "5s", "write_timeout": "5s", "max_inflight": "1",
               "METRICS_PORT": "8082"}


@pytest.fixture(scope="module", autouse=True)
def pods() -> None:
    reason = pods_possible()
    if reason:
        import os

        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


class RunningPod:
    def __init__(self, workdir: Path, *overrides: str) -> None:
        self.port = free_port()
        stack_file = workdir / "stack.yml"
        stack_file.write_text(yaml.safe_dump({
            "version": 1.0, "provider": {"name": "openfaas"},
            "functions": {NAME: {"lang": "python3-flask-cloudevents",
                                 "handler": "./" + str(HANDLER.relative_to(paths.REPO)),
                                 "environment": ENVIRONMENT}}}))
        stack = Stack(root=paths.REPO, copy=load().copy, functions={NAME: Function(
            name=NAME, lang="python3-flask-cloudevents", port=self.port,
            handler="./" + str(HANDLER.relative_to(paths.REPO)))})
        context = build_context(NAME, stack, out=workdir / "build")
        self.log = workdir / "pod.log"
        command = [sys.executable, "-m", "infra.local.pod", NAME, "--stack", str(stack_file),
                   "--context", str(context), *(f"--set={o}" for o in overrides)]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(paths.REPO),
               "FUNCTION_PORT_BASE": str(self.port - 1)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=paths.REPO, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        self.url = f"http://{paths.HOST}:{self.port}"
        self.metrics = f"http://{paths.HOST}:{metrics_port(stack.functions[NAME])}/metrics"
        self._wait()

    def _wait(self, timeout: float = 60) -> None:
        """Until the function itself answers /_/ready (ready or not), as a readiness probe
        would wait: the watchdog answers /_/health before the function has started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                ready = requests.get(f"{self.url}/_/ready", timeout=5)
                if ready.headers.get("Content-Type") == "application/json":
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the pod did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory, local_services: None) -> Iterator[RunningPod]:
    running = RunningPod(tmp_path_factory.mktemp("pod"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def local_services() -> None:
    """PostgreSQL of the local stack (the pod reaches it through its relay)."""
    import socket

    try:
        socket.create_connection((paths.HOST, paths.POSTGRES_PORT), timeout=2).close()
    except OSError:
        pytest.fail("PostgreSQL of the local stack is not running; start it with `make up`")


def test_health_is_the_watchdogs_and_readiness_the_functions(pod: RunningPod) -> None:
    assert requests.get(f"{pod.url}/_/health", timeout=5).status_code == 200
    ready = requests.get(f"{pod.url}/_/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["dependencies"] == {"db": "up"}
    assert requests.get(f"{pod.url}/users", timeout=10).json() == {"database": True}


def test_readiness_says_503_while_the_database_is_unreachable(
        tmp_path: Path, local_services: None) -> None:
    closed = free_port()
    down = RunningPod(tmp_path, f"DATABASE_URL=postgresql+pg8000://scanline@127.0.0.1:{closed}"
                                "/scanline")
    try:
        ready = requests.get(f"{down.url}/_/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["dependencies"]["db"].startswith("down")
        # The watchdog's own health stays up: the pod is alive, just not ready.
        assert requests.get(f"{down.url}/_/health", timeout=5).status_code == 200
    finally:
        down.stop()


def test_exec_timeout_cuts_a_slow_call_off(pod: RunningPod) -> None:
    assert requests.get(f"{pod.url}/sleep", params={"ms": 100}, timeout=10).status_code == 200
    assert requests.get(f"{pod.url}/sleep", params={"ms": 3000}, timeout=10).status_code == 504


def test_max_inflight_refuses_a_second_concurrent_call(pod: RunningPod, tmp_path: Path
                                                       ) -> None:
    entered, release = tmp_path / "entered", tmp_path / "release"
    first: list[requests.Response] = []
    holder = threading.Thread(target=lambda: first.append(requests.get(
        f"{pod.url}/hold", params={"entered": str(entered), "release": str(release)},
        timeout=60)))
    holder.start()
    deadline = time.monotonic() + 30
    while not entered.exists() and time.monotonic() < deadline:  # the call is in flight
        time.sleep(0.01)
    try:
        assert entered.exists(), "the first call never reached the function"
        second = requests.get(f"{pod.url}/sleep", params={"ms": 0}, timeout=10)
        assert second.status_code == 429
    finally:
        release.touch()
        holder.join()
    assert first[0].status_code == 200 and first[0].json() == {"released": True}
    assert requests.get(f"{pod.url}/sleep", params={"ms": 0}, timeout=10).status_code == 200


def test_the_functions_own_metrics_are_on_their_port_not_the_watchdogs(pod: RunningPod
                                                                        ) -> None:
    requests.get(f"{pod.url}/sleep", params={"ms": 0}, timeout=10).raise_for_status()
    text = requests.get(pod.metrics, timeout=10).text
    assert 'scanline_http_requests_total{method="GET",route="/sleep",status="200"}' in text
    # Not through the function's public port (the gateway's way in).
    assert requests.get(f"{pod.url}/metrics", timeout=10).status_code == 404


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is ``directory`` (the pod's watchdog and function)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry / "cwd").resolve() == directory.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_pod_takes_its_watchdog_and_function_with_it(tmp_path: Path,
                                                             local_services: None) -> None:
    """SIGKILL of the pod's process (what the fault suite does to a function) ends the
    function too, as killing a container does: nothing is left running unreachable."""
    victim = RunningPod(tmp_path)
    inside = _processes_in(tmp_path / "build" / NAME)
    assert len(inside) >= 2, inside  # the watchdog and index.py
    victim.process.kill()
    victim.process.wait(10)
    deadline = time.monotonic() + 30
    while _processes_in(tmp_path / "build" / NAME) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_in(tmp_path / "build" / NAME) == []


def test_a_pod_keeps_its_own_tmp_so_its_end_leaves_the_others_ready(
        tmp_path: Path, stack: StackProcess) -> None:
    """of-watchdog's readiness needs its lock file in the temporary folder and deletes it
    when it stops: on a shared /tmp one pod ending made every other pod answer 503."""
    passing = RunningPod(tmp_path)
    assert (paths.POD_TMP_DIR / NAME / ".lock").exists()
    passing.stop()
    health = stack.health()
    assert set(health["functions"].values()) == {"up"}, health


def test_the_image_environment_is_the_dockerfiles() -> None:
    dockerfile = (paths.REPO / "templates/python3-flask-cloudevents/Dockerfile").read_text()
    for name, value in WATCHDOG_ENV.items():
        assert f'{name}="{value}"' in dockerfile, name
