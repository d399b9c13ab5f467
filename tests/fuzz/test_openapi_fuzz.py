"""schemathesis against the live stack: every operation of docs/openapi.json, through the
gateway, with generated valid and invalid input. No answer may be a 5xx, and every answer
must be one the document promises (status code, content type, body schema).

Authenticated operations get a real access token (a user signed up through register →
the OTP mail → verify-otp → token), so generation reaches past the 401 into the handlers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bench.ocr_client import OcrClient
from infra import openapi
from infra.local.paths import REPO
from tests.support.stack import Stack

pytestmark = pytest.mark.fuzz

# Per operation (11 in all), valid and invalid input together: about 1,300 requests.
MAX_EXAMPLES = 100
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

schema = schemathesis.openapi.from_path(REPO / openapi.DOCUMENT)
schema.config.update(base_url=Stack().gateway, request_timeout=15)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


# (operation, status) -> answers, printed at the end as the suite's figures.
ANSWERS: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    operations = sorted({op for op, _ in ANSWERS})
    print(f"\nschemathesis: {sum(ANSWERS.values())} requests over {len(operations)} operations")
    for op in operations:
        statuses = ", ".join(f"{status}: {n}" for (o, status), n in sorted(ANSWERS.items())
                             if o == op)
        print(f"  {op:45} {statuses}")


@pytest.fixture(scope="module")
def bearer(fuzz_user: OcrClient) -> dict[str, str]:
    return fuzz_user.auth


@schema.parametrize()
@settings(deadline=timedelta(seconds=20), suppress_health_check=list(HealthCheck),
          database=None, print_blob=True)
def test_every_answer_is_documented_and_never_a_server_error(
        case: schemathesis.Case, bearer: dict[str, str]) -> None:
    response = case.call_and_validate(headers=bearer, checks=CHECKS)
    ANSWERS[(case.operation.label, response.status_code)] += 1
