"""How many CPUs this process may use: the ones it may run on, capped by its cgroup's CPU quota."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where cgroup v2 is mounted
OWN_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(cpu_max_files: Sequence[Path] | None = None) -> int:
    """The default number of worker processes: the CPUs this process may run on (its affinity,
    which ``taskset`` and cpusets narrow), capped by the CPU quota of its cgroup and of every
    cgroup above it (cgroup v2 ``cpu.max``: ``200000 100000`` allows 2 CPUs; Kubernetes
    ``limits.cpu`` and ``docker --cpus`` set it). A fractional quota rounds down, because a
    process beyond the quota is throttled (every call stalls), while one CPU short is only
    less throughput; never below 1. ``cpu_max_files`` replaces the files read (for tests).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = cpus or 1
    for path in _own_cpu_max_files() if cpu_max_files is None else cpu_max_files:
        quota = _quota(path)
        if quota is not None:
            usable = min(usable, max(1, int(quota)))
    return usable


def _quota(path: Path) -> float | None:
    """CPUs allowed by one ``cpu.max`` file; None if unlimited, absent or unreadable."""
    try:
        fields = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _own_cpu_max_files() -> list[Path]:
    """The ``cpu.max`` of this process's cgroup v2 and of its ancestors (none on cgroup v1)."""
    try:
        lines = OWN_CGROUP.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        if line.startswith("0::/"):  # the v2 hierarchy
            parts = [p for p in line[4:].strip().split("/") if p]
            if ".." in parts:  # a cgroup outside this namespace's view
                return []
            groups = [CGROUP_ROOT.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
            return [group / "cpu.max" for group in groups]
    return []
