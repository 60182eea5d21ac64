"""``model_control_mode: poll``: watch the repository and apply what changed, as Triton does.

Every ``repository_poll_secs`` the poller takes a snapshot of each model folder the server may
serve (within ``--models`` when set): config.yaml and every file under the version folders,
by name, size and modification time. A folder that is new or whose snapshot changed is
(re)loaded through the registry (new versions load and warm while the old keep serving, then
take over at once, then the old drain); a folder that disappeared is unloaded. A failed reload
keeps the old versions serving. Copy a new version in under another name and rename it into
place, so that a poll never sees half a model.

The loop's wait is injected, so tests drive ``poll_once`` directly (no sleeping).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from server.errors import ConfigError, SluiceError
from server.repository.loader import CONFIG_FILE, list_model_folders
from server.repository.registry import ModelRegistry

log = logging.getLogger("sluice.repository")

Snapshot = tuple[tuple[str, int, int], ...]


def folder_snapshot(folder: Path) -> Snapshot:
    """(relative path, size, mtime_ns) of config.yaml and of every file in version folders."""
    found: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        if rel != "." and not rel.split(os.sep, 1)[0].isdigit():
            dirs[:] = []
            continue
        for name in files:
            if rel == "." and name != CONFIG_FILE:
                continue
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            found.append((os.path.join(rel, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


class RepositoryPoller:
    """Applies repository changes to ``registry``; ``run`` loops, ``poll_once`` is one look."""

    def __init__(
        self,
        registry: ModelRegistry,
        interval_s: float,
        *,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._wait = wait
        self._seen: dict[str, Snapshot] = self._scan()

    def _scan(self) -> dict[str, Snapshot]:
        try:
            folders = list_model_folders(self._registry.repository)
        except ConfigError as e:
            log.error("repository poll: %s", e)
            return {}
        return {f.name: folder_snapshot(f) for f in folders if self._registry.in_scope(f.name)}

    async def poll_once(self) -> list[str]:
        """Look once and apply; the names acted on (loaded, reloaded or unloaded)."""
        now = await asyncio.to_thread(self._scan)
        acted: list[str] = []
        for name, snapshot in now.items():
            if self._seen.get(name) != snapshot:
                log.info("repository poll: %s %s", name, "changed" if name in self._seen else "new")
                entry = await self._registry.load(name)
                acted.append(name)
                if entry.last_error:
                    log.error("repository poll: %s: %s", name, entry.last_error)
                else:
                    log.info("repository poll: %s serves version(s) %s", name,
                             ", ".join(str(v) for v in sorted(entry.versions)))
        for name in set(self._seen) - set(now):
            log.info("repository poll: %s removed; unloading it", name)
            try:
                await self._registry.unload(name)
                acted.append(name)
            except SluiceError as e:
                log.error("repository poll: unloading %s: %s", name, e)
        self._seen = now
        return sorted(acted)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self._wait(self._interval_s)
            try:
                await self.poll_once()
            except Exception:  # one bad look must not end the polling
                log.exception("repository poll failed")
