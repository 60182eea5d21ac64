"""Name/version -> loaded model, with each model's state; the one place that loads and unloads.

States follow Triton's repository index: ``READY``, ``LOADING``, ``UNAVAILABLE`` (with a reason).
A model that fails to load is recorded as UNAVAILABLE with its error and never blocks the others.

Only names of model folders (a sub-folder with a config.yaml) within ``--models`` when that is
set are ever loaded or unloaded; any other name is ModelNotFound and leaves nothing behind.
Readiness counts only the models that should be serving (loaded at start-up or by ``load``, not
unloaded since). A reload that fails keeps the old versions serving, and the model ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from server.errors import ConfigError, ModelNotFound, ModelNotReady, SluiceError
from server.memory import release_freed_memory
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
    wanted: bool = False
    """Should be serving: counted by readiness (False once unloaded)."""
    last_error: str = ""
    """Why the latest load failed ("" when it succeeded), also when old versions still serve."""

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
        cost_budget_s: float = 0.0,
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
        self._cost_budget_s = cost_budget_s
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
        """Triton's strict readiness: start-up finished and every model that should be serving
        (loaded at start-up or by ``load``, not unloaded since) is; never with an empty
        repository."""
        return self.startup_complete and bool(self._entries) and all(
            e.state == "READY" and all(v.available for v in e.versions.values())
            for e in self._entries.values() if e.wanted
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

    def in_scope(self, name: str) -> bool:
        """``name`` is a model folder this server may serve (within ``--models`` if set)."""
        if self._only and name not in self._only:
            return False
        try:
            return any(f.name == name for f in list_model_folders(self.repository))
        except ConfigError:
            return False

    def _check_scope(self, name: str) -> None:
        if self._only and name not in self._only:
            raise ModelNotFound(f"model '{name}' is not one this server serves "
                                f"(--models: {', '.join(self._only)})")
        if not self.in_scope(name):
            raise ModelNotFound(f"model '{name}' is not in the repository")

    def index(self) -> list[ModelEntry]:
        """The models this server may serve, loaded or not (Triton's repository index); those
        not loaded yet are shown UNAVAILABLE. Changes nothing."""
        names = {f.name for f in list_model_folders(self.repository)}
        if self._only:
            names &= set(self._only)
        names |= set(self._entries)
        return [self._entries.get(n) or ModelEntry(n) for n in sorted(names)]

    async def load_all(self) -> None:
        folders = self._folders()
        for folder in folders:
            self._entries.setdefault(folder.name, ModelEntry(folder.name, state="LOADING"))
            self._entries[folder.name].wanted = True
        await asyncio.gather(*(self.load(folder.name) for folder in folders))
        self.startup_complete = True

    async def load(self, name: str) -> ModelEntry:
        """(Re)load a model: new versions start serving before old ones drain. A name outside
        the repository or ``--models`` raises ModelNotFound and leaves no entry behind; a failed
        reload keeps the old versions serving (see ``ModelEntry.last_error``)."""
        self._check_scope(name)
        async with self._locks.setdefault(name, asyncio.Lock()):
            entry = self._entries.setdefault(name, ModelEntry(name))
            entry.wanted = True
            folder = self.repository / name
            previous = dict(entry.versions)
            try:
                config = with_device(read_config(folder), self._device)
                wanted = select_versions(folder, config)
                if not previous:
                    entry.state, entry.reason = "LOADING", ""
                loaded = await asyncio.gather(
                    *(
                        load_version(
                            folder, config, v, metrics=self._metrics,
                            executor=self._executor, threads=self._threads,
                            response_cache_size=self._response_cache_size,
                            plugins=self._engine_plugins, watchdog=self._watchdog,
                            cost_budget_s=self._cost_budget_s,
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
                return self._failed(entry, str(e))
            except Exception as e:  # an engine library's own error: still one model's failure
                log.exception("model %s failed to load", name)
                return self._failed(entry, f"{type(e).__name__}: {e}")
            entry.versions = {v.version: v for v in fresh}
            entry.state, entry.reason, entry.last_error = "READY", "", ""
            for old in previous.values():
                await old.stop(self._drain_timeout_s)
            if previous:
                release_freed_memory()
            return entry

    def _failed(self, entry: ModelEntry, reason: str) -> ModelEntry:
        entry.last_error = reason
        if entry.versions:
            log.error("model %s failed to reload; its old versions keep serving: %s",
                      entry.name, reason)
        else:
            entry.state, entry.reason = "UNAVAILABLE", reason
            log.error("model %s failed to load: %s", entry.name, reason)
        return entry

    async def unload(self, name: str) -> None:
        if self._only and name not in self._only:
            self._check_scope(name)
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not in the repository")
        async with self._locks.setdefault(name, asyncio.Lock()):
            entry.wanted = False
            versions, entry.versions = entry.versions, {}
            entry.state, entry.reason = "UNAVAILABLE", "unloaded"
            await asyncio.gather(*(v.stop(self._drain_timeout_s) for v in versions.values()))
            release_freed_memory()

    async def close(self) -> None:
        """Drain every model (used on shutdown)."""
        await asyncio.gather(*(self.unload(name) for name in list(self._entries)))
