"""Name/version -> loaded model, with each model's state; the one place that loads and unloads.

States follow Triton's repository index: ``READY``, ``LOADING``, ``UNAVAILABLE`` (with a reason).
A model that fails to load is recorded as UNAVAILABLE with its error and never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from server.errors import ConfigError, ModelNotFound, ModelNotReady, SluiceError
from server.metrics import Metrics
from server.repository.loader import (
    ModelVersion,
    list_model_folders,
    load_version,
    read_config,
    select_versions,
    with_device,
)
from server.scheduler.watchdog import WatchdogLimits

log = logging.getLogger("sluice.repository")


@dataclass
class ModelEntry:
    """What the registry knows of one model folder."""

    name: str
    state: str = "UNAVAILABLE"
    reason: str = ""
    versions: dict[int, ModelVersion] = field(default_factory=dict)

    @property
    def latest(self) -> ModelVersion | None:
        return self.versions[max(self.versions)] if self.versions else None


class ModelRegistry:
    """Loads the repository's models and answers which version serves a request."""

    def __init__(
        self,
        repository: Path,
        *,
        metrics: Metrics,
        executor: Executor,
        threads: int,
        only: Sequence[str] = (),
        drain_timeout_s: float = 30.0,
        response_cache_size: int = 0,
        device: str = "",
        engine_plugins: Sequence[str] = (),
        watchdog: WatchdogLimits | None = None,
    ) -> None:
        self.repository = repository
        self._metrics = metrics
        self._executor = executor
        self._threads = threads
        self._only = tuple(only)
        self._drain_timeout_s = drain_timeout_s
        self._response_cache_size = response_cache_size
        self._device = device
        self._engine_plugins = tuple(engine_plugins)
        self._watchdog = watchdog
        self._entries: dict[str, ModelEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.startup_complete = False

    # ---- queries -------------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The serving version: the newest, or the one asked for."""
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not in the repository")
        if version is None or version == "":
            latest = entry.latest
            if latest is None:
                raise ModelNotReady(f"model '{name}' is {entry.state}: {entry.reason or 'not loaded'}")
            return latest
        if not version.isdigit():
            raise ModelNotFound(f"model '{name}' has no version '{version}'")
        loaded = entry.versions.get(int(version))
        if loaded is None:
            if entry.state == "READY" or not entry.versions:
                raise ModelNotFound(f"model '{name}' version {version} is not served")
            raise ModelNotReady(f"model '{name}' version {version} is not ready")
        return loaded

    def is_ready(self) -> bool:
        """Triton's strict readiness: start-up finished and every model that should be, serving."""
        return self.startup_complete and bool(self._entries) and all(
            e.state == "READY" and all(v.available for v in e.versions.values())
            for e in self._entries.values()
        )

    # ---- loading -------------------------------------------------------------------------
    def _folders(self) -> list[Path]:
        folders = list_model_folders(self.repository)
        if self._only:
            by_name = {f.name: f for f in folders}
            unknown = [n for n in self._only if n not in by_name]
            if unknown:
                raise ConfigError(
                    f"{self.repository}: models {unknown} not found (have: {sorted(by_name)})"
                )
            folders = [by_name[n] for n in self._only]
        return folders

    def index(self) -> list[ModelEntry]:
        """Every model folder in the repository, loaded or not (Triton's repository index)."""
        for folder in list_model_folders(self.repository):
            self._entries.setdefault(folder.name, ModelEntry(folder.name))
        return self.entries()

    async def load_all(self) -> None:
        folders = self._folders()
        for folder in folders:
            self._entries.setdefault(folder.name, ModelEntry(folder.name, state="LOADING"))
        await asyncio.gather(*(self.load(folder.name) for folder in folders))
        self.startup_complete = True

    async def load(self, name: str) -> ModelEntry:
        """(Re)load a model: new versions start serving before old ones drain."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            entry = self._entries.setdefault(name, ModelEntry(name))
            folder = self.repository / name
            previous = dict(entry.versions)
            try:
                if not (folder / "config.yaml").is_file():
                    raise ModelNotFound(f"model '{name}' is not in the repository")
                config = with_device(read_config(folder), self._device)
                wanted = select_versions(folder, config)
                entry.state, entry.reason = "LOADING", ""
                loaded = await asyncio.gather(
                    *(
                        load_version(
                            folder, config, v, metrics=self._metrics,
                            executor=self._executor, threads=self._threads,
                            response_cache_size=self._response_cache_size,
                            plugins=self._engine_plugins, watchdog=self._watchdog,
                        )
                        for v in wanted
                    ),
                    return_exceptions=True,
                )
                errors = [r for r in loaded if isinstance(r, BaseException)]
                fresh = [r for r in loaded if isinstance(r, ModelVersion)]
                if errors:
                    for version in fresh:
                        await version.stop(0.0)
                    raise errors[0]
            except (SluiceError, OSError) as e:
                entry.state, entry.reason = "UNAVAILABLE", str(e)
                log.error("model %s failed to load: %s", name, e)
                if isinstance(e, ModelNotFound):
                    raise
                return entry
            except Exception as e:  # an engine library's own error: still one model's failure
                entry.state, entry.reason = "UNAVAILABLE", f"{type(e).__name__}: {e}"
                log.exception("model %s failed to load", name)
                return entry
            entry.versions = {v.version: v for v in fresh}
            entry.state, entry.reason = "READY", ""
            for old in previous.values():
                await old.stop(self._drain_timeout_s)
            return entry

    async def unload(self, name: str) -> None:
        async with self._locks.setdefault(name, asyncio.Lock()):
            entry = self._entries.get(name)
            if entry is None:
                raise ModelNotFound(f"model '{name}' is not in the repository")
            versions, entry.versions = entry.versions, {}
            entry.state, entry.reason = "UNAVAILABLE", "unloaded"
            await asyncio.gather(*(v.stop(self._drain_timeout_s) for v in versions.values()))

    async def close(self) -> None:
        """Drain every model (used on shutdown)."""
        await asyncio.gather(*(self.unload(name) for name in list(self._entries)))
