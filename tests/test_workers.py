"""Worker count from fake cgroup trees and affinity: no process is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launchers.settings import Settings
from launchers.workers import available_cpus, cgroup_quota, worker_count


def fake_v2(root: Path, quotas: dict[str, str], cgroup: str = "/") -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(f"0::{cgroup}\n")
    for path, quota in quotas.items():
        directory = root / "sys/fs/cgroup" / path.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(quota + "\n")
    return root


def fake_v1(root: Path, quota: int, period: int, mount: str = "cpu,cpuacct") -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    )
    # The container sees its own cgroup at the mount root, not at /docker/abc.
    directory = root / "sys/fs/cgroup" / mount
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (directory / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_kubernetes_one_cpu_limit_gives_one_worker(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, {"/": "100000 100000"})
    count = worker_count(settings(), root, affinity=16)
    assert (count.count, str(count)) == (1, "1 worker: 1 CPU available (cgroup quota 1 CPUs)")


def test_v2_unlimited_falls_back_to_affinity(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, {"/": "max 100000"})
    assert cgroup_quota(root) is None
    assert str(worker_count(settings(), root, affinity=2)) == (
        "2 workers: 2 CPUs available (scheduler affinity)"
    )


def test_v2_tightest_ancestor_wins(tmp_path: Path) -> None:
    root = fake_v2(
        tmp_path,
        {"/": "max 100000", "/kubepods": "300000 100000", "/kubepods/pod1": "max 100000"},
        cgroup="/kubepods/pod1",
    )
    assert cgroup_quota(root) == 3.0
    assert available_cpus(root, affinity=8).count == 3


def test_fractional_quota_rounds_down_but_never_below_one(tmp_path: Path) -> None:
    assert available_cpus(fake_v2(tmp_path / "a", {"/": "150000 100000"}), affinity=4).count == 1
    assert available_cpus(fake_v2(tmp_path / "b", {"/": "50000 100000"}), affinity=4).count == 1
    assert available_cpus(fake_v2(tmp_path / "c", {"/": "250000 100000"}), affinity=4).count == 2


@pytest.mark.parametrize("mount", ["cpu,cpuacct", "cpu"])
def test_v1_quota_at_the_container_mount_root(tmp_path: Path, mount: str) -> None:
    root = fake_v1(tmp_path, quota=200000, period=100000, mount=mount)
    assert str(available_cpus(root, affinity=8).reason) == "cgroup quota 2 CPUs"


def test_v1_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(fake_v1(tmp_path, quota=-1, period=100000)) is None


def test_affinity_tighter_than_quota(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, {"/": "400000 100000"})
    assert str(available_cpus(root, affinity=2).reason) == "scheduler affinity"


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    assert available_cpus(tmp_path, affinity=3).count == 3


def test_cap_applies_to_the_computed_count(tmp_path: Path) -> None:
    count = worker_count(settings(max_workers=4), tmp_path, affinity=32)
    assert str(count) == (
        "4 workers: 32 CPUs available (scheduler affinity), capped by MAX_WORKERS=4"
    )


def test_web_concurrency_overrides_and_is_not_capped(tmp_path: Path) -> None:
    count = worker_count(settings(web_concurrency=12, max_workers=4), tmp_path, affinity=1)
    assert str(count) == "12 workers: WEB_CONCURRENCY=12"


def test_reload_runs_one_worker(tmp_path: Path) -> None:
    count = worker_count(settings(reload=True, web_concurrency=4), tmp_path, affinity=8)
    assert str(count) == "1 worker: RELOAD=true runs a single worker under the reloader"


def test_this_machine() -> None:
    # Whatever this machine is, the answer is at least one and at most what affinity allows.
    cpus = available_cpus()
    assert 1 <= cpus.count <= len(os.sched_getaffinity(0))
