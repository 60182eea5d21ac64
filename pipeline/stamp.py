"""Content hash of everything a build depends on, so a second run can skip finished models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_PIPELINE_DIR = Path(__file__).resolve().parent


#: The modules whose code shapes the built weights and graphs. Orchestration, cards and
#: evaluation are left out so that editing them does not force a 25-minute rebuild.
WEIGHT_MODULES = ("data.py", "split.py", "train.py", "metrics.py", "export.py", "variants.py",
                  "fixed_scales.py")


def code_version() -> str:
    """Hash of the source of :data:`WEIGHT_MODULES`: changing how weights are made invalidates them."""
    h = hashlib.sha256()
    for path in (_PIPELINE_DIR / name for name in WEIGHT_MODULES):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_stamp(files: Iterable[Path], settings: dict[str, Any]) -> str:
    """sha256 over data file bytes, the settings (as sorted JSON) and the code version."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(code_version().encode())
    return h.hexdigest()


def read_stamp(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["stamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
