"""Access control of a real ``sluice serve`` (README "Security" / "Access").

Two servers on loopback with the tiny model: one with the defaults (model control off, no keys,
plain HTTP), one over TLS with a certificate made here, ``--model-control-mode explicit``, admin
and API keys from a folder (as a mounted Secret), and a Host allow-list; and one in ``poll``
mode on the small ranker model, given a new version while it serves.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import ServerProcess, start_server
from tests.support.tensor_model import make_ranker_model
from tests.support.tools import require

pytestmark = pytest.mark.e2e
ADMIN_KEY = "e2e-admin-key-0123456789"
API_KEY = "e2e-api-key-0123456789"
MODEL = "tiny-sentiment"
TEXT = {"inputs": ["what a lovely flight"]}
FAST_STOP = ["--shutdown-delay-s", "0", "--models", MODEL]


@pytest.fixture(scope="module")
def plain(tiny_repository: Path) -> Iterator[ServerProcess]:
    proc = start_server(tiny_repository, extra_args=FAST_STOP)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require("openssl", "makes the TLS test's self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def secured(tiny_repository: Path, certificate: tuple[Path, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    keys = tmp_path_factory.mktemp("keys")
    (keys / "admin").mkdir()
    (keys / "admin" / "ops").write_text(ADMIN_KEY + "\n")
    (keys / "api").mkdir()
    (keys / "api" / "client-a").write_text(API_KEY + "\n")
    cert, key = certificate
    proc = start_server(tiny_repository, extra_args=[
        *FAST_STOP, "--model-control-mode", "explicit", "--admin-keys-dir", str(keys / "admin"),
        "--api-keys-dir", str(keys / "api"), "--allowed-hosts", "127.0.0.1",
        "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    yield proc
    proc.stop()


@pytest.fixture
def tls(secured: ServerProcess, certificate: tuple[Path, Path]) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(base_url=f"https://127.0.0.1:{secured.port}", verify=context) as c:
        yield c


def test_model_control_is_off_by_default(plain: ServerProcess) -> None:
    with httpx.Client(base_url=plain.url) as c:
        for action in ("load", "unload"):
            r = c.post(f"/v2/repository/models/{MODEL}/{action}")
            assert r.status_code == 403 and "--model-control-mode explicit" in r.json()["error"]
        assert c.post("/v2/repository/models/nope/load").status_code == 403
        assert c.post("/v2/repository/index").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post(f"/v1/models/{MODEL}/classify", json=TEXT).status_code == 200


def test_cross_site_form_post_is_refused(plain: ServerProcess) -> None:
    with httpx.Client(base_url=plain.url) as c:
        evil = {"Origin": "https://evil.example"}
        r = c.post(f"/v1/models/{MODEL}/classify", content=b'{"inputs": ["x"]}',
                   headers={**evil, "Content-Type": "text/plain"})
        assert r.status_code == 415 and "application/json" in r.json()["error"]
        r = c.post(f"/v1/models/{MODEL}/classify", json=TEXT, headers=evil)
        assert r.status_code == 403 and "cors_origins" in r.json()["error"]
        assert "access-control-allow-origin" not in r.headers  # CORS off
        assert c.get("/v2/health/ready").status_code == 200


def test_tls_serves_https_only(secured: ServerProcess, tls: httpx.Client) -> None:
    assert tls.get("/v2/health/ready").status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{secured.url}/v2/health/ready")  # plain HTTP to the TLS port


def test_api_keys_guard_inference_and_metadata(tls: httpx.Client) -> None:
    assert tls.post(f"/v1/models/{MODEL}/classify", json=TEXT).status_code == 401
    r = tls.get(f"/v2/models/{MODEL}", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    ok = {"Authorization": f"Bearer {API_KEY}"}
    assert tls.post(f"/v1/models/{MODEL}/classify", json=TEXT, headers=ok).status_code == 200
    assert tls.get(f"/v2/models/{MODEL}", headers=ok).status_code == 200
    assert tls.get("/v2/health/live").status_code == 200  # open by default
    assert tls.get("/metrics").status_code == 200


def test_load_and_unload_need_the_admin_key(tls: httpx.Client) -> None:
    load = f"/v2/repository/models/{MODEL}/load"
    assert tls.post(load).status_code == 401
    assert tls.post(load, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = tls.post(load, headers=admin)
    assert r.status_code == 200, r.text
    assert tls.get("/v2/health/ready").status_code == 200


def test_unknown_or_excluded_names_leave_nothing_behind(tls: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for name in ("nope", "tiny-sentiment-torch"):
        r = tls.post(f"/v2/repository/models/{name}/load", headers=admin)
        assert r.status_code == 404, (name, r.text)
    r = tls.post("/v2/repository/models/%2E%2E/load", headers=admin)  # not a model name at all
    assert r.status_code == 400 and "model name" in r.json()["error"], r.text
    r = tls.post("/v2/repository/models/tiny-sentiment-torch/load", headers=admin)
    assert "--models" in r.json()["error"]
    index = tls.post("/v2/repository/index", headers=admin).json()
    assert [m["name"] for m in index] == [MODEL]
    assert tls.get("/v2/health/ready").status_code == 200


def test_host_header_must_be_allowed_except_on_probes(tls: httpx.Client) -> None:
    ok = {"Authorization": f"Bearer {API_KEY}"}
    r = tls.get(f"/v2/models/{MODEL}", headers={**ok, "Host": "rebind.attacker.example"})
    assert r.status_code == 421 and "allowed_hosts" in r.json()["error"]
    assert tls.get("/v2/health/ready", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_poll_mode_serves_a_new_version_without_a_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    repository = tmp_path_factory.mktemp("poll-repo")
    make_ranker_model(repository / "ranker")
    proc = start_server(repository, extra_args=[
        "--shutdown-delay-s", "0", "--model-control-mode", "poll",
        "--repository-poll-secs", "0.5"])
    try:
        folder = repository / "ranker"
        shutil.copytree(folder / "1", folder / "incoming")
        (folder / "incoming").rename(folder / "2")
        proc.wait_for_line(lambda line: "ranker serves version(s) 2" in line, timeout=30)
        with httpx.Client(base_url=proc.url) as c:
            assert c.get("/v2/models/ranker").json()["versions"] == ["2"]
            r = c.post("/v2/models/ranker/infer", json={"inputs": [
                {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
            assert r.status_code == 200 and r.json()["model_version"] == "2"
            assert c.get("/v2/health/ready").status_code == 200
            r = c.post("/v2/repository/models/ranker/load")
            assert r.status_code == 403 and "poll" in r.json()["error"]  # as Triton
    finally:
        proc.stop()
