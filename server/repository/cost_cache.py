"""Where measured cost grids are kept between starts, and what they are keyed by.

A grid is only valid for the same model file on the same engine settings on the same machine,
so the key hashes all three: the artifact (a SHA-256 of its content, every file of a folder
artifact, not its mtime: a copied model repository still hits), the engine spec that changes
speed (backend, device, precision, threads, instances, the grid's sizes and lengths) and the
machine (CPU model, usable CPUs).
The folder is ``tempfile.gettempdir()/sluice-cost`` (the root file system is read-only in
the manifests; ``/tmp`` is an emptyDir), one JSON file per key, written atomically. A cache
that cannot be read or written is logged and ignored: the grid is measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engines.cost_grid import CostGrid
from server.cpus import available_cpus

log = logging.getLogger("sluice.repository")

CHUNK_BYTES = 1 << 22
#: Bumped when the grid's meaning changes, so old files are not read as new ones.
FORMAT = 1


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "sluice-cost"


def _file_digest(path: Path, digest: Any) -> None:
    digest.update(f"{path.name}:{path.stat().st_size}:".encode())
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)


def artifact_digest(artifact: Path) -> str:
    """A short hash of the model file (or of every file of a model folder)."""
    digest = hashlib.sha256()
    if artifact.is_dir():
        for path in sorted(p for p in artifact.rglob("*") if p.is_file()):
            _file_digest(path, digest)
    else:
        _file_digest(artifact, digest)
    return digest.hexdigest()[:32]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(artifact: Path, engine: Mapping[str, object]) -> str:
    """The key of one grid: model file x engine settings x machine."""
    material = {
        "format": FORMAT,
        "artifact": artifact_digest(artifact),
        "engine": {k: str(v) for k, v in sorted(engine.items())},
        "machine": {"cpu": cpu_model(), "cpus": available_cpus(), "arch": platform.machine()},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:40]


class GridCache:
    """Cost grids on disk, one JSON file per :func:`cache_key`."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_cache_dir()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> CostGrid | None:
        path = self.path(key)
        try:
            return CostGrid.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("cost grid cache %s unreadable (%s); measuring again", path, e)
            return None

    def put(self, key: str, grid: CostGrid) -> None:
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(grid.to_json()), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cost grid cache %s not writable (%s); it is measured at every start", path, e)
