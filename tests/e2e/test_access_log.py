"""A real ``sluice serve``: bare JSON access lines on its output, request ids, Server-Timing and
the request counter over HTTP on loopback."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.e2e

MODEL = "tiny-sentiment"
SECRET_TEXT = "vermilion-axolotl-5521 please refund card 4111"


def access_line(server: ServerProcess, request_id: str) -> dict[str, object]:
    marker = f'"request_id":"{request_id}"'
    line = server.wait_for_line(lambda text: marker in text)
    assert line.startswith("{") and line.endswith("}\n"), f"not a bare JSON line: {line!r}"
    doc: dict[str, object] = json.loads(line)
    return doc


def test_served_requests_log_bare_json_echo_ids_and_carry_server_timing(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.post(f"/v1/models/{MODEL}/classify", json={"inputs": [SECRET_TEXT]},
                   headers={"X-Request-ID": "e2e-classify-1"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "e2e-classify-1"
        timing = dict(re.findall(r"([a-z]+);dur=(\d+\.\d+)", r.headers["server-timing"]))
        assert set(timing) == {"queue", "prepare", "compute", "total"}
        assert 0 <= float(timing["queue"]) <= float(timing["total"])
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
        missing = c.post("/v2/models/not-served/infer", json=body)
        assert missing.status_code == 404
        made = missing.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{16}", made)
        metrics = c.get("/metrics").text

    line = access_line(server, "e2e-classify-1")
    assert (line["path"], line["model"], line["version"], line["status"]) == (
        "/v1/models/{model}/classify", MODEL, "1", 200)
    assert isinstance(line["batch_size"], int) and line["batch_size"] >= 1
    assert str(line["client"]).startswith("127.0.0.1:")
    assert (access_line(server, made)["status"], access_line(server, made)["model"]) == (
        404, "not-served")
    # The root logger's format never wraps the line, and no input text is logged anywhere.
    assert not any("sluice.access" in text for text in server.lines)
    assert "vermilion" not in server.log()

    counts = {
        (s.labels["model"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(metrics) for s in family.samples
        if s.name == "sluice_http_requests_total"
    }
    assert counts[(MODEL, "classify", "200")] == 1  # this module's server saw only these
    assert counts[("", "infer", "404")] == 1
    assert counts[(MODEL, "infer", "429")] == 0 and counts[(MODEL, "infer", "503")] == 0
