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
  default (on), ``default`` over this variant is the access log's cost;
- ``fixed-cut``: no cost model (``SLUICE_COST_GRID_BUDGET_S=0``) and the hand-tuned cut the
  configs pinned before it (``batching.sub_batch_tokens: 256``, an overlay repository): the
  default over this variant is what the cost model buys;
- ``one-instance`` / ``two-instances``: the cost model cutting batches, the instance/thread
  split pinned (``engine.instance_count: 1`` or ``2``, the cores shared between them, an overlay
  repository): the default against these is what the split choice buys.

A pinned version (``--version N``): Sluice serves what its ``config.yaml``'s version policy
names, and the bench must not edit the repository it measures, so :func:`version_repository`
builds an overlay repository in a temporary folder: the model folder's entries as symlinks,
and a copy of ``config.yaml`` whose policy names only version N.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VARIANTS = ("default", "auth", "access-log", "no-access-log", "fixed-cut", "one-instance",
            "two-instances")
#: The hand-tuned cut of the ``fixed-cut`` variant (the committed configs' before the cost model).
FIXED_SUB_BATCH_TOKENS = 256


@dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    repository: Path | None = None
    """What this variant serves instead of the bench's repository (an overlay), if anything."""

    @property
    def target(self) -> str:
        """The target's name in the tables: ``sluice`` for the default, ``sluice[auth]`` ..."""
        return "sluice" if self.name == "default" else f"sluice[{self.name}]"


def prepare(name: str, workdir: Path, repository: Path | None = None,
            model: str | None = None) -> Variant:
    """The arguments, environment and client key of variant ``name`` (files under ``workdir``;
    ``repository`` and ``model``: what the bench serves, for variants that overlay it)."""
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
    if name == "fixed-cut":
        if repository is None or model is None:
            raise ValueError("the fixed-cut variant needs the repository and the model")

        def pin(config: dict[str, Any]) -> None:
            config.setdefault("batching", {})["sub_batch_tokens"] = FIXED_SUB_BATCH_TOKENS

        overlay = overlay_repository(repository, model, workdir, pin)
        return Variant(name, (), {"SLUICE_COST_GRID_BUDGET_S": "0"}, repository=overlay)
    if name in ("one-instance", "two-instances"):
        if repository is None or model is None:
            raise ValueError(f"the {name} variant needs the repository and the model")
        count = 1 if name == "one-instance" else 2

        def split(config: dict[str, Any]) -> None:
            config.setdefault("engine", {})["instance_count"] = count

        return Variant(name, (), {}, repository=overlay_repository(repository, model, workdir, split))
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def version_repository(repository: Path, model: str, version: str, workdir: Path) -> Path:
    """An overlay of ``repository`` in ``workdir`` where ``model`` serves only ``version``."""
    if not (repository / model / str(version)).is_dir():
        raise FileNotFoundError(f"{repository / model}: no version folder {version}")

    def pin(config: dict[str, Any]) -> None:
        config["version_policy"] = {"specific": {"versions": [int(version)]}}

    return overlay_repository(repository, model, workdir, pin)


def overlay_repository(repository: Path, model: str, workdir: Path,
                       edit: Callable[[dict[str, Any]], None]) -> Path:
    """An overlay of ``repository``'s ``model`` in ``workdir``: its entries as symlinks, and a
    copy of its ``config.yaml`` changed by ``edit``."""
    source = repository / model
    config = yaml.safe_load((source / "config.yaml").read_text())
    edit(config)
    overlay = workdir / "repository"
    target = overlay / model
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "config.yaml":
            (target / entry.name).symlink_to(entry.resolve())
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return overlay
