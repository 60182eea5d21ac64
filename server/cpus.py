"""How many CPUs this process may use: the affinity mask and the cgroup CPU quota, whichever is less.

In a Kubernetes pod the affinity mask is the node's cores; the pod's CPU limit is a CFS quota
in the cgroup (``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` on v1).
Sizing thread pools from the node's cores under a 2-CPU limit gets the process throttled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """Cores in this process's affinity mask (all online cores where there is no mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_paths(proc_self_cgroup: Path) -> tuple[str | None, str | None]:
    """This process's cgroup path on v2 (``0::/path``) and in v1's cpu hierarchy."""
    v2 = v1 = None
    for line in (_read(proc_self_cgroup) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _up_from(mount: Path, own: str | None) -> Iterator[Path]:
    """The cgroup folders whose limits bind this process: its own up to the mount's root.

    In a container the mount usually *is* its own cgroup (``/proc/self/cgroup`` then names a
    path that does not exist under the mount), so folders that do not exist are skipped and
    the mount itself is always read.
    """
    seen: set[Path] = set()
    if own:
        path = PurePosixPath(own)
        for part in (path, *path.parents):
            folder = mount / str(part).lstrip("/")
            if folder not in seen and folder.is_dir():
                seen.add(folder)
                yield folder
    if mount not in seen:
        yield mount


def _quota_cpus(quota: str | None, period: str | None) -> int | None:
    """ceil(quota / period), or None for no limit (``max``, ``-1``) or an unreadable file."""
    if quota is None or period is None or quota in ("max", "-1"):
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return max(1, math.ceil(q / p))


def _limits(root: Path, proc_self_cgroup: Path) -> Iterator[int]:
    v2, v1 = _own_paths(proc_self_cgroup)
    # cgroup v2: the unified hierarchy at the root, or under unified/ on a hybrid host
    for mount in (root, root / "unified"):
        if (mount / "cgroup.controllers").is_file():
            for folder in _up_from(mount, v2):
                quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
                cpus = _quota_cpus(quota or None, period or None)
                if cpus is not None:
                    yield cpus
            break
    # cgroup v1: the cpu controller's own mount (also named cpu,cpuacct)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        mount = root / name
        if (mount / "cpu.cfs_quota_us").is_file():
            for folder in _up_from(mount, v1):
                cpus = _quota_cpus(_read(folder / "cpu.cfs_quota_us"),
                                   _read(folder / "cpu.cfs_period_us"))
                if cpus is not None:
                    yield cpus
            break


def cgroup_cpu_limit(
    root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> int | None:
    """The tightest CPU quota of this process's cgroups, rounded up; None when there is none."""
    return min(_limits(root, proc_self_cgroup), default=None)


def available_cpus(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """min(affinity mask, cgroup quota): the CPUs this process can actually keep busy."""
    limit = cgroup_cpu_limit(root, proc_self_cgroup)
    cpus = affinity_cpus()
    return cpus if limit is None else max(1, min(cpus, limit))
