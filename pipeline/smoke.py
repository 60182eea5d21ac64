"""A cached smoke-profile repository for tests (``sluice serve`` end-to-end tests included).

Building it takes about half a minute on 2 cores; the content-hash stamp makes later calls
return at once, and a file lock keeps parallel test processes from building it twice.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from pipeline.split import Split

SMOKE_MODEL = "airline-sentiment"
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "smoke-repository"


def smoke_repository(root: Path | None = None, *, model: str = SMOKE_MODEL) -> Path:
    """Build (or reuse) ``model`` with the smoke profile under ``root``; returns the repository."""
    from pipeline.build import build

    root = Path(root) if root is not None else DEFAULT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            build([model], root, profile="smoke", progress=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def held_out(model: str = SMOKE_MODEL, profile: str = "smoke") -> Split:
    """The test split a build of ``model`` with ``profile`` evaluated on (same seed, same cut)."""
    from pipeline.build import splits_for

    return splits_for(model, profile).test
