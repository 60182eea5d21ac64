"""The CPU count follows the cgroup CPU limit (a pod's), on cgroup v2, v1 and hybrid hosts.

Each test writes a fake cgroup tree (the files the kernel exposes) under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server import cpus
from server.settings import default_threads


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def affinity(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend the affinity mask holds 16 cores (the node's, as in a pod)."""
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    return 16


def _v2(root: Path, own: str = "/", **cpu_max: str) -> Path:
    """A cgroup v2 mount at ``root``; ``cpu_max`` maps a folder ('' = the mount) to cpu.max."""
    _write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for folder, value in cpu_max.items():
        target = root / folder.replace("__", "/")
        _write(target / "cgroup.controllers", "cpu\n")
        _write(target / "cpu.max", value + "\n")
    proc = root.parent / "proc-self-cgroup"
    _write(proc, f"0::{own}\n")
    return proc


def test_v2_quota_rounds_up(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    proc = _v2(root, **{"": "150000 100000"})
    assert cpus.cgroup_cpu_limit(root, proc) == 2
    assert default_threads(root, proc) == 2


def test_v2_max_means_no_limit(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    proc = _v2(root, **{"": "max 100000"})
    assert cpus.cgroup_cpu_limit(root, proc) is None
    assert default_threads(root, proc) == affinity


def test_v2_tightest_of_own_cgroup_and_its_parents(tmp_path: Path, affinity: int) -> None:
    # a pod limit (kubepods/pod1: 3 CPUs) above a container with a looser one (8 CPUs)
    root = tmp_path / "cgroup"
    proc = _v2(root, own="/kubepods/pod1/ctr",
               kubepods="max 100000", kubepods__pod1="300000 100000",
               kubepods__pod1__ctr="800000 100000")
    assert default_threads(root, proc) == 3


def test_a_quota_above_the_affinity_mask_leaves_the_mask(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    proc = _v2(root, **{"": "6400000 100000"})
    assert cpus.cgroup_cpu_limit(root, proc) == 64
    assert default_threads(root, proc) == affinity


def test_v1_cfs_quota(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "250000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    # a container's own mount: /proc/self/cgroup names a host path that does not exist here
    _write(proc, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert default_threads(root, proc) == 3


def test_v1_minus_one_means_no_limit(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "1:cpu:/\n")
    assert cpus.cgroup_cpu_limit(root, proc) is None
    assert default_threads(root, proc) == affinity


def test_hybrid_host_reads_the_v1_cpu_controller(tmp_path: Path, affinity: int) -> None:
    # cgroup2 mounted at unified/ without the cpu controller, cpu on v1 (this sandbox's layout)
    root = tmp_path / "cgroup"
    _write(root / "unified" / "cgroup.controllers", "")
    _write(root / "cpu" / "cpu.cfs_quota_us", "100000\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "1:cpu:/\n0::/\n")
    assert default_threads(root, proc) == 1


def test_no_cgroup_files_fall_back_to_the_affinity_mask(tmp_path: Path, affinity: int) -> None:
    assert cpus.cgroup_cpu_limit(tmp_path / "none", tmp_path / "none-proc") is None
    assert default_threads(tmp_path / "none", tmp_path / "none-proc") == affinity


def test_unreadable_values_are_ignored(tmp_path: Path, affinity: int) -> None:
    root = tmp_path / "cgroup"
    proc = _v2(root, **{"": "garbage"})
    assert cpus.cgroup_cpu_limit(root, proc) is None


def test_this_machine_gives_a_sane_count() -> None:
    assert 1 <= default_threads() <= cpus.affinity_cpus()
