"""Case 3: PostgreSQL is stopped for 10 s. Every HTTP function (the ones without a topic
annotation) answers 503 problem+json within 2 s while it is down (no hang, no crash) and
serves again once it is back, in the same process (supervisord pids unchanged)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from bench.ocr_client import PASSWORD, OcrClient
from infra.local.stackfile import load
from tests.support.outages import postgresql_stopped, programs
from tests.support.stack import Stack
from tests.support.tally import Tally

OUTAGE = 10.0
ROUND_EVERY = 2.0
ANSWER_WITHIN = 2.0
RECOVER_WITHIN = 20.0


@dataclass(frozen=True)
class Call:
    """One request that needs the database, and what it answers when the database is up."""

    function: str
    method: str
    path: str
    ok: int
    json: Callable[[], dict[str, object]] | None = None
    auth: bool = False
    # A problem document, except from the token endpoint: RFC 6749 errors are plain JSON
    # ({"error": "temporarily_unavailable", ...}).
    error_type: str = "application/problem+json"


def calls(user: OcrClient) -> list[Call]:
    def fresh() -> str:
        return f"pg-{uuid.uuid4().hex[:12]}@example.com"

    return [
        Call("register", "POST", "", 202,
             lambda: {"name": "Fault", "email": fresh(), "password": PASSWORD}),
        Call("issue-otp", "POST", "", 202, lambda: {"email": fresh()}),
        Call("verify-otp", "POST", "", 400, lambda: {"email": fresh(), "otp": "123456"}),
        Call("token", "POST", "", 200, lambda: {
            "grant_type": "password", "username": user.email, "password": PASSWORD},
             error_type="application/json"),
        Call("ocr-jobs", "GET", "", 200, auth=True),
        Call("ocr-jobs", "GET", f"/{uuid.uuid4()}", 404, auth=True),
        # Scheduled, but reachable through the gateway like every function.
        Call("housekeeping", "POST", "", 200),
    ]


def send(stack: Stack, user: OcrClient, call: Call) -> tuple[requests.Response | None, float]:
    started = time.monotonic()
    try:
        response = requests.request(
            call.method, f"{stack.gateway}/function/{call.function}{call.path}",
            json=call.json() if call.json else None, headers=user.auth if call.auth else None,
            timeout=10)
    except requests.RequestException:
        response = None
    return response, time.monotonic() - started


@pytest.fixture
def user(stack: Stack) -> OcrClient:
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="pg-fault")


def test_http_functions_answer_503_fast_and_recover_in_place(
        stack: Stack, user: OcrClient, figures: Callable[[Tally], Tally]) -> None:
    # The functions callable over HTTP that use the database (the console serves files).
    http_functions = {f.name for f in load().functions.values()
                      if not f.topics and "DATABASE_URL" in f.environment}
    planned = calls(user)
    assert http_functions <= {c.function for c in planned}, "a new HTTP function needs a call"
    for call in planned:  # everything answers normally before the outage
        response, _ = send(stack, user, call)
        assert response is not None and response.status_code == call.ok, (call, response)
    before = {p.name: p.pid for p in programs(stack).values()}

    answers: list[tuple[Call, int | None, str, float]] = []
    with postgresql_stopped():
        stopped = time.monotonic()
        while time.monotonic() - stopped < OUTAGE:
            round_started = time.monotonic()
            for call in planned:
                response, took = send(stack, user, call)
                if response is None:  # no answer at all (refused, reset, timed out)
                    answers.append((call, None, "", took))
                else:
                    answers.append((call, response.status_code,
                                    response.headers.get("Content-Type", ""), took))
            time.sleep(max(0.0, ROUND_EVERY - (time.monotonic() - round_started)))

    recovered: dict[str, float] = {}
    back = time.monotonic()
    while len(recovered) < len(planned) and time.monotonic() - back < RECOVER_WITHIN:
        for index, call in enumerate(planned):
            if index not in recovered:
                response, _ = send(stack, user, call)
                if response is not None and response.status_code == call.ok:
                    recovered[index] = round(time.monotonic() - back, 1)
        time.sleep(0.2)
    after = {p.name: p.pid for p in programs(stack).values()}

    keys = [f"{i}" for i in range(len(answers))]
    good = Counter(k for k, (call, status, content_type, took)
                   in zip(keys, answers, strict=True)
                   if status == 503 and content_type == call.error_type and took < ANSWER_WITHIN)
    slowest = max(took for *_, took in answers)
    tally = figures(Tally.of(
        "3 postgresql down 10 s (requests)", keys, good, slowest_answer_s=round(slowest, 2),
        recovered_after_s=max(recovered.values(), default=None),
        statuses=dict(Counter(str(status) for _, status, *_ in answers))))
    bad = [(c.function, c.path, s, ct, round(t, 2)) for c, s, ct, t in answers
           if not (s == 503 and ct == c.error_type and t < ANSWER_WITHIN)]
    assert not bad, f"answers other than a fast 503 problem: {bad}"
    assert tally.ok
    assert len(recovered) == len(planned), \
        f"not serving again: {[c.function for i, c in enumerate(planned) if i not in recovered]}"
    assert after == before, "a process was restarted"
