"""The helper that turns a missing outside program into a skip here and a failure in CI."""

from __future__ import annotations

import pytest

from tests.support import tools


def test_found_program_returns_its_path() -> None:
    assert tools.require("sh", "a shell").endswith("/sh")


def test_missing_program_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-program-xyz is not installed"):
        tools.require("no-such-program-xyz", "testing")


def test_missing_program_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-program-xyz is not installed"):
        tools.require("no-such-program-xyz", "testing")
