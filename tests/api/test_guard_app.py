"""The guard and CORS as wired by ``create_app`` (in-process; no model needed)."""

from __future__ import annotations

from pathlib import Path

import httpx

from server.app import create_app
from server.settings import Settings

ORIGIN = "https://console.example"


def client(tmp_path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(model_repository=tmp_path, **settings))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sluice")


async def test_cors_off_by_default(tmp_path: Path) -> None:
    async with client(tmp_path) as c:
        r = await c.options("/v2/repository/index", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
        r = await c.post("/v2/repository/index", headers={"Origin": ORIGIN})
        assert r.status_code == 403


async def test_configured_origin_gets_cors_and_through_the_guard(tmp_path: Path) -> None:
    async with client(tmp_path, cors_origins=(ORIGIN,), api_keys=("k",)) as c:
        r = await c.options("/v2/repository/index", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
        r = await c.post("/v2/repository/index", json={}, headers={
            "Origin": ORIGIN, "Authorization": "Bearer k"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
        r = await c.post("/v2/repository/index", headers={"Origin": ORIGIN})
        assert r.status_code == 401 and r.json()["error"].startswith("this endpoint needs")


async def test_refusals_are_counted(tmp_path: Path) -> None:
    async with client(tmp_path) as c:
        r = await c.post("/v2/repository/models/m/unload", content=b"x",
                         headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "x-request-id" in r.headers
        metrics = (await c.get("/metrics")).text
        assert 'status="415"' in metrics
