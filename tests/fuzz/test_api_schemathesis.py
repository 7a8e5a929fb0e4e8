"""Schemathesis over the REST API, from the OpenAPI description the app serves: every operation
with generated parameters and bodies, both valid (positive) and invalid (negative), each sent as
an agent, a supervisor and an admin (API tokens). No answer may be a 5xx, and every refusal has
the documented error shape. Short in CI; `make fuzz` runs many more examples. A failure prints
the request as a curl command: add it to tests/fuzz/test_regressions.py when fixed."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fuzz.server import CenterThread, budget

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CenterThread]:
    with CenterThread(Path(tmp_path_factory.mktemp("api_fuzz"))) as srv:
        yield srv


def check(case: schemathesis.Case, center: CenterThread) -> None:
    for role in ("agent", "supervisor", "admin"):
        response = case.call(base_url=center.base, timeout=30,
                             headers={"Authorization": f"Bearer {center.tokens[role]}"})
        assert response.status_code < 500, (role, response.status_code, response.text[:300],
                                             case.as_curl_command())
        if response.status_code >= 400 and response.status_code != 405:
            assert "json" in str(response.headers.get("content-type", "")), (
                role, response.status_code, response.text[:300], case.as_curl_command())
            body = response.json()
            assert isinstance(body.get("error"), dict) and {"code", "message"} <= set(body["error"]), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_fails_on_hostile_input(center: CenterThread, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(center.base + "/api/v1/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 30
    for op in operations:
        keep: dict[str, object] = {}
        if op.path.endswith("/erase") or (op.method.upper() == "DELETE" and "tokens" in op.path):
            keep = {"path_parameters": {"id": 999999}}  # keep the seed data (and our tokens)
        elif op.path.startswith("/api/v1/users/{id}") and op.method.upper() != "GET":
            keep = {"path_parameters": {"id": center.ids["spare"]}}  # never disable root (our tokens)

        @settings(max_examples=budget(6), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(mode, **keep))  # type: ignore[arg-type]
        def run(case: schemathesis.Case) -> None:
            check(case, center)

        try:
            run()
        except Exception as e:
            raise AssertionError(f"{op.method.upper()} {op.path} ({mode.value}): {e}") from e
