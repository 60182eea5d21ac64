"""A model whose engine crashes on load leaves the other models serving (a real server)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.fault_fixtures import FAULT_ENV, add_fault_model, classify
from tests.support.server_process import ServerProcess, start_server
from tests.support.tiny_model import make_tiny_repository

BROKEN = "broken"
HEALTHY = "tiny-sentiment"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = make_tiny_repository(tmp_path_factory.mktemp("crash-repo"))
    add_fault_model(root, BROKEN, crash_on_load=True)
    proc = start_server(root, extra_args=["--models", f"{BROKEN},{HEALTHY}",
                                          "--shutdown-delay-s", "0"],
                        env=FAULT_ENV, expect_ready=False)
    yield proc
    proc.stop()


def test_a_crash_on_load_leaves_the_other_models_serving(server: ServerProcess) -> None:
    r = classify(server.url, HEALTHY, ["still served"])
    assert r.status_code == 200, r.text
    broken = classify(server.url, BROKEN, ["never loaded"])
    assert broken.status_code == 503, broken.text
    assert "injected crash on load" in broken.json()["error"]
    ready = httpx.get(f"{server.url}/v2/models/{BROKEN}/ready")
    assert ready.status_code == 503 and "injected crash on load" in ready.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/{HEALTHY}/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


def test_a_plugin_engine_not_allowed_by_the_setting_is_refused_at_load(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Without ``SLUICE_ENGINE_PLUGINS`` the same config fails to load and says why."""
    root = make_tiny_repository(tmp_path_factory.mktemp("no-plugins-repo"))
    add_fault_model(root, "plugin")
    proc = start_server(root, extra_args=["--models", "plugin", "--shutdown-delay-s", "0"],
                        expect_ready=False)
    try:
        r = classify(proc.url, "plugin", ["refused"])
        assert r.status_code == 503, r.text
        assert "SLUICE_ENGINE_PLUGINS" in r.json()["error"]
    finally:
        proc.stop()
