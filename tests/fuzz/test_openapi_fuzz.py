"""Schemathesis against Sluice's own OpenAPI schema, on a real ``sluice serve`` process.

The schema is read from the server's ``/openapi.json``; every operation gets a bounded number of
generated requests (positive and negative), and each answer must be no 500, arrive within a
timeout, and have a status, content type and body the schema declares for that operation. The
``model`` path parameter is the served model half of the time, so the routes are exercised past
the model lookup. Load and unload are part of it: the fuzz reloads the model while it serves.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server_process import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "tiny-sentiment"
CASES_PER_OPERATION = 25
REQUEST_TIMEOUT_S = 30.0  # a hang, not a slow answer on a loaded 2-core CI machine
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: Load and unload are on (explicit mode) and need this admin key, so the fuzzer reaches them.
ADMIN_KEY = "fuzz-admin-key"
SERVER_ARGS = ["--model-control-mode", "explicit"]
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Not part of Sluice's own API description (Prometheus text format; FastAPI's doc pages).
SKIPPED = {"/metrics"}


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The ONNX tiny model alone (load of anything else answers 404 fast)."""
    repo = tmp_path_factory.mktemp("fuzz-repo")
    shutil.copytree(tiny_repository / MODEL, repo / MODEL)
    proc = start_server(repo, extra_args=["--shutdown-delay-s", "0", *SERVER_ARGS],
                        env={"SLUICE_ADMIN_KEYS": ADMIN_KEY})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def schema(server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def operations(schema: Any, methods: set[str]) -> list[Any]:
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path not in SKIPPED and op.method.upper() in methods:
            out.append(op)
    return out


def fuzz(server: ServerProcess, operation: Any, mode: GenerationMode) -> Counter[int]:
    """Run the operation's cases; the statuses seen (so a test can show it was not vacuous)."""
    session = requests.Session()
    seen: Counter[int] = Counter()

    @settings(max_examples=CASES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        params = case.path_parameters or {}
        if "model" in params and data.draw(st.booleans()):
            params["model"] = MODEL
            if "version" in params:
                params["version"] = "1"
            if operation.path.endswith("/infer") and data.draw(st.booleans()):
                # a body the tiny text model can answer, with generated texts
                texts = data.draw(st.lists(st.text(max_size=30), min_size=1, max_size=4))
                case.headers = {}
                case.body = {"inputs": [{"name": "text", "shape": [len(texts)],
                                         "datatype": "BYTES", "data": texts}]}
        headers = ADMIN_HEADERS if "/repository/" in operation.path else None
        response = case.call_and_validate(base_url=server.url, session=session, checks=CHECKS,
                                          headers=headers, timeout=REQUEST_TIMEOUT_S)
        seen[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:
        # negative mode on an operation with nothing to negate (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.path
    print(mode.value, operation.method, operation.path, dict(seen))
    return seen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_read_routes_conform(server: ServerProcess, schema: Any, mode: GenerationMode) -> None:
    ops = operations(schema, {"GET"})
    assert len(ops) >= 8, [op.path for op in ops]
    seen: Counter[int] = Counter()
    for op in ops:
        seen += fuzz(server, op, mode)
    if mode is GenerationMode.POSITIVE:  # schema-valid names reach the lookup: some 404
        assert seen[200] > 0 and seen[404] > 0, seen
    else:  # schema-violating ones mostly stop at the name and version checks
        assert seen[400] > 0, seen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_inference_routes_conform(server: ServerProcess, schema: Any, mode: GenerationMode) -> None:
    ops = [op for op in operations(schema, {"POST"}) if op.path.endswith(("infer", "classify"))]
    assert {op.path for op in ops} == {"/v2/models/{model}/infer", "/v1/models/{model}/classify"}
    seen: Counter[int] = Counter()
    for op in ops:
        seen += fuzz(server, op, mode)
    assert seen[400] > 0, seen  # the fuzz reached the decoders
    if mode is GenerationMode.POSITIVE:
        assert seen[200] > 0, seen  # and the model


def test_repository_routes_conform_and_the_model_comes_back(server: ServerProcess,
                                                            schema: Any) -> None:
    ops = [op for op in operations(schema, {"POST"}) if "/repository/" in op.path]
    assert len(ops) == 3
    for op in ops:
        fuzz(server, op, GenerationMode.POSITIVE)
    requests.post(f"{server.url}/v2/repository/models/{MODEL}/load", headers=ADMIN_HEADERS,
                  timeout=60).raise_for_status()
    r = requests.post(f"{server.url}/v1/models/{MODEL}/classify", json={"inputs": ["ok"]},
                      timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])  # no shrinking: the CI budget
@given(st.one_of(st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
                 st.text(alphabet="0123456789²³¹٣+- ", min_size=1, max_size=12)
                 .filter(lambda v: v == v.strip() != "")))  # requests refuses edge spaces
def test_header_length_values_never_500(server: ServerProcess, value: str) -> None:
    """``Inference-Header-Content-Length`` beyond what the schema's integer says: digits past
    Python's int limit, Unicode digits, signs. The body is valid JSON, so only the header is
    wrong (outside the generated cases above: schemathesis keeps headers short)."""
    body = b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a"]}]}'
    r = requests.post(f"{server.url}/v2/models/{MODEL}/infer", data=body, timeout=REQUEST_TIMEOUT_S,
                      headers={"Inference-Header-Content-Length": value.encode("utf-8")
                               .decode("latin-1"), "Content-Type": "application/json"})
    assert r.status_code in (200, 400, 413), (value[:20], len(value), r.status_code, r.text)
    assert "error" in r.json() or r.status_code == 200
