"""Access settings: safe defaults, bounds, and the flags of ``sluice serve``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.cli import parser
from server.settings import Settings


def test_defaults_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_HOST", raising=False)
    s = Settings()
    assert s.host == "127.0.0.1"
    assert s.model_control_mode == "none"
    assert s.cors_origins == () and s.ssl_certfile is None


def test_lists_come_comma_separated_and_keys_stay_out_of_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_API_KEYS", "secret-one, secret-two")
    monkeypatch.setenv("SLUICE_ALLOWED_HOSTS", "sluice.example,localhost")
    s = Settings()
    assert s.api_keys == ("secret-one", "secret-two")
    assert s.allowed_hosts == ("sluice.example", "localhost")
    assert "secret" not in repr(s)


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile"):
        Settings(ssl_certfile=Path("cert.pem"))
    with pytest.raises(ValidationError):
        Settings(model_control_mode="always")  # type: ignore[arg-type]


def test_serve_flags() -> None:
    args = parser().parse_args(["serve", "--model-control-mode", "poll", "--allowed-hosts", "a,b",
                                "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"])
    assert args.model_control_mode == "poll" and args.allowed_hosts == "a,b"
    assert args.ssl_certfile == Path("c.pem")
