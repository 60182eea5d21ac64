"""What a bench target is started with beyond the defaults: option variants and a pinned version.

Variants (``sluice bench --variants default,auth,access-log``) measure the cost of an option
side by side in one run: each is a Sluice target of its own (``sluice``, ``sluice[auth]``, ...),
started with the option on and measured under the same load as the default.

- ``default``: ``sluice serve`` as configured (no API keys; the access log as the server's
  default has it: on, one JSON line per request on stdout, written here to a log file);
- ``auth``: an API key folder (``--api-keys-dir``) and every request sending its
  ``Authorization: Bearer`` key;
- ``access-log``: the access log on (``SLUICE_ACCESS_LOG=true``) with ``--log-level info``
  (what ``default`` has too unless the environment turns the log off);
- ``no-access-log``: the access log off (``SLUICE_ACCESS_LOG=false``): with the server's
  default (on), ``default`` over this variant is the access log's cost.

A pinned version (``--version N``): Sluice serves what its ``config.yaml``'s version policy
names, and the bench must not edit the repository it measures, so :func:`version_repository`
builds an overlay repository in a temporary folder: the model folder's entries as symlinks,
and a copy of ``config.yaml`` whose policy names only version N.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

VARIANTS = ("default", "auth", "access-log", "no-access-log")


@dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None

    @property
    def target(self) -> str:
        """The target's name in the tables: ``sluice`` for the default, ``sluice[auth]`` ..."""
        return "sluice" if self.name == "default" else f"sluice[{self.name}]"


def prepare(name: str, workdir: Path) -> Variant:
    """The arguments, environment and client key of variant ``name`` (files under ``workdir``)."""
    if name == "default":
        return Variant(name)
    if name == "auth":
        key = secrets.token_urlsafe(32)
        folder = workdir / "api-keys"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench-client").write_text(key + "\n")
        return Variant(name, ("--api-keys-dir", str(folder)), api_key=key)
    if name == "access-log":
        return Variant(name, ("--log-level", "info"), {"SLUICE_ACCESS_LOG": "true",
                                                       "SLUICE_LOG_LEVEL": "info"})
    if name == "no-access-log":
        return Variant(name, (), {"SLUICE_ACCESS_LOG": "false"})
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def version_repository(repository: Path, model: str, version: str, workdir: Path) -> Path:
    """An overlay of ``repository`` in ``workdir`` where ``model`` serves only ``version``."""
    source = repository / model
    if not (source / str(version)).is_dir():
        raise FileNotFoundError(f"{source}: no version folder {version}")
    config = yaml.safe_load((source / "config.yaml").read_text())
    config["version_policy"] = {"specific": {"versions": [int(version)]}}
    overlay = workdir / "repository"
    target = overlay / model
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "config.yaml":
            (target / entry.name).symlink_to(entry.resolve())
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return overlay
