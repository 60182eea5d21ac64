"""The access guard's decisions, on ASGI scopes (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from server.api.guard import Guard, GuardPolicy, host_allowed
from server.keys import KeySet


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    raise AssertionError


def guard(**kw: Any) -> Guard:
    kw.setdefault("api_keys", KeySet())
    kw.setdefault("admin_keys", KeySet())
    return Guard(_app, GuardPolicy(**kw))


def scope(path: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "path": path, "method": method, "headers": raw}


def status(g: Guard, s: dict[str, Any]) -> int:
    refusal = g.check(s)
    return 200 if refusal is None else refusal[0]


LOAD = "/v2/repository/models/m/load"


def test_model_control_off_by_default() -> None:
    g = guard(admin_keys=KeySet(["adm"]))
    refusal = g.check(scope(LOAD, "POST", authorization="Bearer adm"))
    assert refusal is not None and refusal[0] == 403 and "--model-control-mode" in refusal[1]


def test_poll_mode_refuses_load_and_unload_as_triton_does() -> None:
    g = guard(control_mode="poll", admin_keys=KeySet(["adm"]))
    refusal = g.check(scope(LOAD, "POST", authorization="Bearer adm"))
    assert refusal is not None and refusal[0] == 403 and "poll" in refusal[1]


def test_control_needs_a_configured_admin_key() -> None:
    assert status(guard(control_mode="explicit"), scope(LOAD, "POST")) == 403
    g = guard(control_mode="explicit", admin_keys=KeySet(["adm"]), api_keys=KeySet(["api"]))
    assert status(g, scope(LOAD, "POST")) == 401
    assert status(g, scope(LOAD, "POST", authorization="Bearer api")) == 401
    assert status(g, scope(LOAD, "POST", authorization="Bearer adm")) == 200
    assert status(g, scope("/v2/repository/models/m/unload", "POST")) == 401


def test_api_keys_cover_inference_and_metadata_not_health_or_metrics() -> None:
    g = guard(api_keys=KeySet(["api"]), admin_keys=KeySet(["adm"]))
    for path in ("/v2/models/m/infer", "/v2/models/m", "/v2", "/v1/models/m/classify"):
        assert status(g, scope(path)) == 401
        assert status(g, scope(path, authorization="Bearer nope")) == 401
        assert status(g, scope(path, authorization="Bearer api")) == 200
        assert status(g, scope(path, authorization="Bearer adm")) == 200
    assert status(g, scope("/v2/health/ready")) == 200
    assert status(g, scope("/metrics")) == 200
    closed = guard(api_keys=KeySet(["api"]), health_requires_key=True, metrics_requires_key=True)
    assert status(closed, scope("/v2/health/ready")) == 401
    assert status(closed, scope("/metrics")) == 401
    assert status(guard(), scope("/v2/models/m/infer", "POST")) == 200  # no keys: open


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_form_content_types_are_refused_on_post(content_type: str) -> None:
    refusal = guard().check(scope("/v2/models/m/infer", "POST", content_type=content_type))
    assert refusal is not None and refusal[0] == 415


def test_json_octet_stream_and_none_pass() -> None:
    g = guard()
    for headers in ({"content_type": "application/json; charset=utf-8"},
                    {"content_type": "application/octet-stream"}, {}):
        assert status(g, scope("/v2/models/m/infer", "POST", **headers)) == 200


def test_cross_origin_post_refused_unless_configured() -> None:
    s = scope("/v2/models/m/infer", "POST", origin="https://evil.example", host="sluice:8000")
    assert status(guard(), s) == 403
    assert status(guard(cors_origins=("https://evil.example",)), s) == 200
    own = scope("/v2/models/m/infer", "POST", origin="http://sluice:8000", host="sluice:8000")
    assert status(guard(), own) == 200
    assert status(guard(), scope("/v2/models/m", origin="https://evil.example")) == 200  # GET


def test_host_allow_list_exempts_probes() -> None:
    g = guard(allowed_hosts=("sluice.example.com", "localhost:8000"))
    assert status(g, scope("/v2", host="sluice.example.com:8000")) == 200
    assert status(g, scope("/v2", host="localhost:8000")) == 200
    assert status(g, scope("/v2", host="localhost:9000")) == 421
    assert status(g, scope("/v2", host="rebind.attacker.net")) == 421
    assert status(g, scope("/v2")) == 421
    assert status(g, scope("/v2/health/ready", host="10.0.0.7:8000")) == 200


def test_host_patterns() -> None:
    assert host_allowed("a.example.com", (".example.com",))
    assert host_allowed("example.com:80", (".example.com",))
    assert not host_allowed("badexample.com", (".example.com",))
    assert host_allowed("[::1]:8000", ("[::1]",))
