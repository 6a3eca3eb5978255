"""Schema-driven fuzzing of the whole HTTP API, from its own OpenAPI document, on a live strom.

Schemathesis generates valid and invalid requests for every documented operation. Each answer
must not be a server error, must match the documented status codes, content types and
schemas, and every admin operation must refuse requests without the token (`ignored_auth`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from strom.web.openapi_ops import OPERATIONS, SSE
from tests.api.live_server import LiveServer
from tests.conftest import free_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth]
# Per operation; STROM_FUZZ_EXAMPLES=500 digs deeper when there is time.
EXAMPLES = int(os.environ.get("STROM_FUZZ_EXAMPLES", "50"))

# Event streams never end, so a request/response fuzzer cannot read them; test_admin_api and
# the page tests cover them.
FUZZED = [op for op in OPERATIONS if op.media_type != SSE]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with LiveServer(free_settings(), data_dir) as server:
        yield server


@pytest.fixture
def known_cp(live: LiveServer) -> str:
    """A charge point that exists, so fuzzed bodies get past the 404 to the validation."""
    repo = live.services.charge_points

    async def ensure() -> None:
        if not await repo.exists("cp-1"):
            await repo.add("cp-1", name="Fuzz", lat=1.0, lon=2.0, num_connectors=2)

    live.call(ensure)
    return "cp-1"


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.http_url}/api/v1/openapi.json")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("method,path", [(op.method, op.path) for op in FUZZED],
                         ids=[f"{op.method.upper()} {op.path}" for op in FUZZED])
def test_operation_answers_every_input_without_server_error(
        api_schema: schemathesis.BaseSchema, live: LiveServer, known_cp: str, method: str,
        path: str) -> None:
    operation = api_schema[path][method]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode) for mode in modes]
    if "{cp_id}" in path:
        strategies += [operation.as_strategy(mode, path_parameters={"cp_id": known_cp})
                       for mode in modes]
    strategy = st.one_of(*strategies)
    headers = {"Authorization": f"Bearer {live.token}"}

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    check()
