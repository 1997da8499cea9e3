"""The default number of workers follows the CPUs a container may use, not the host's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from triage.cli.cpus import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def _cpu_max(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="ascii")
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no quota
        ("50000 100000\n", 1),  # half a CPU: still one worker
        ("150000 100000\n", 1),  # 1.5 CPUs round down: a second would be throttled
        ("200000 100000\n", min(AFFINITY, 2)),
        ("6400000 100000\n", AFFINITY),  # a quota above the CPUs it may run on
        ("garbage\n", AFFINITY),
        ("", AFFINITY),
    ],
)
def test_a_cgroup_cpu_quota_caps_the_default(tmp_path: Path, content: str, expected: int) -> None:
    assert usable_cpus([_cpu_max(tmp_path, "cpu.max", content)]) == expected


def test_the_tightest_quota_up_the_hierarchy_wins_and_missing_files_are_ignored(
    tmp_path: Path,
) -> None:
    files = [
        _cpu_max(tmp_path, "leaf", "max 100000\n"),
        tmp_path / "missing",
        _cpu_max(tmp_path, "parent", "100000 100000\n"),
    ]
    assert usable_cpus(files) == 1
    assert usable_cpus([]) == AFFINITY


def test_this_machine_gives_at_least_one_cpu_and_no_more_than_it_may_run_on() -> None:
    assert 1 <= usable_cpus() <= AFFINITY
