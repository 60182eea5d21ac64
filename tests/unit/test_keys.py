"""Keys from settings and from a folder (a Kubernetes Secret volume), reread as it changes."""

from __future__ import annotations

import os
from pathlib import Path

from server.keys import KeySet, bearer_token, read_key_folder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _secret_volume(mount: Path, keys: dict[str, str], stamp: str) -> None:
    """What the kubelet does: a new ..<stamp> folder, ..data swapped to it, links to ..data."""
    data = mount / f"..{stamp}"
    data.mkdir()
    for name, key in keys.items():
        (data / name).write_text(key + "\n")
    tmp = mount / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, mount / "..data")
    for name in keys:
        link = mount / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def test_fixed_keys() -> None:
    keys = KeySet(["alpha", "beta"])
    assert keys.enabled and keys.accepts("alpha") and keys.accepts(b"beta")
    assert not keys.accepts("alph") and not keys.accepts("") and not keys.accepts("alphax")
    assert not KeySet().enabled
    assert "alpha" not in repr(keys)


def test_secret_volume_is_reread_after_an_in_place_update(tmp_path: Path) -> None:
    clock = Clock()
    _secret_volume(tmp_path, {"first": "k1"}, "2026_01")
    keys = KeySet(folder=tmp_path, reread_s=2.0, clock=clock)
    assert keys.accepts("k1") and not keys.accepts("k2")
    _secret_volume(tmp_path, {"first": "k2"}, "2026_02")  # rotated in place
    clock.now = 1.0
    assert keys.accepts("k1")  # not reread yet
    clock.now = 2.5
    assert keys.accepts("k2") and not keys.accepts("k1")


def test_folder_skips_hidden_empty_and_large_files(tmp_path: Path) -> None:
    (tmp_path / ".hidden").write_text("h")
    (tmp_path / "empty").write_text("  \n")
    (tmp_path / "big").write_text("x" * 10_000)
    (tmp_path / "ok").write_text(" key \n")
    assert read_key_folder(tmp_path) == ["key"]
    assert read_key_folder(tmp_path / "missing") == []


def test_missing_folder_means_no_keys_until_it_appears(tmp_path: Path) -> None:
    clock = Clock()
    keys = KeySet(folder=tmp_path / "keys", clock=clock)
    assert not keys.enabled
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "a").write_text("k")
    clock.now = 10.0
    assert keys.enabled and keys.accepts("k")


def test_bearer_token() -> None:
    assert bearer_token(b"Bearer abc") == b"abc"
    assert bearer_token(b"bearer  abc ") == b"abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(b"Bearer ") is None
    assert bearer_token(None) is None
