"""How many worker processes: the CPUs this process may really use, not the host's core count.

Inside a container `os.cpu_count()` reports the host's cores; the limit that counts is the
scheduler affinity (`--cpuset-cpus`, `taskset`) and the cgroup CPU quota (`--cpus`, a Kubernetes
CPU limit). One event-loop worker keeps one CPU busy, so one worker per usable CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from launchers.settings import Settings

_QuotaReader = Callable[[Path], float | None]


@dataclass(frozen=True)
class CPUs:
    count: int
    reason: str


@dataclass(frozen=True)
class WorkerCount:
    count: int
    reason: str

    def __str__(self) -> str:
        noun = "worker" if self.count == 1 else "workers"
        return f"{self.count} {noun}: {self.reason}"


def worker_count(
    settings: Settings, root: Path = Path("/"), affinity: int | None = None
) -> WorkerCount:
    if settings.reload:
        return WorkerCount(1, "RELOAD=true runs a single worker under the reloader")
    if settings.web_concurrency is not None:
        return WorkerCount(settings.web_concurrency, f"WEB_CONCURRENCY={settings.web_concurrency}")
    cpus = available_cpus(root, affinity)
    plural = "CPU" if cpus.count == 1 else "CPUs"
    if cpus.count > settings.max_workers:
        return WorkerCount(
            settings.max_workers,
            f"{cpus.count} {plural} available ({cpus.reason}), capped by "
            f"MAX_WORKERS={settings.max_workers}",
        )
    return WorkerCount(cpus.count, f"{cpus.count} {plural} available ({cpus.reason})")


def available_cpus(root: Path = Path("/"), affinity: int | None = None) -> CPUs:
    """The smaller of the scheduler affinity and the cgroup quota, at least 1.

    `root` is where `/proc` and `/sys` are found and `affinity` the CPUs this process may run
    on, so that tests can hand in a fake machine.
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0))
    cpus = CPUs(affinity, "scheduler affinity")
    quota = cgroup_quota(root)
    if quota is not None:
        # Round down: a 1.5-CPU quota shared by two busy workers gets them both throttled.
        limited = max(1, math.floor(quota))
        if limited <= cpus.count:
            cpus = CPUs(limited, f"cgroup quota {quota:g} CPUs")
    return cpus


def cgroup_quota(root: Path = Path("/")) -> float | None:
    """The tightest CPU quota on this process's cgroup or its ancestors, in CPUs; None if none."""
    quotas: list[float] = []
    for line in _read(root / "proc/self/cgroup").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            quotas += _walk(root / "sys/fs/cgroup", path, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                quotas += _walk(root / "sys/fs/cgroup" / mount, path, _v1_quota)
    return min(quotas, default=None)


def _walk(mount: Path, path: str, read_quota: _QuotaReader) -> list[float]:
    # In a container the cgroup path names the host's hierarchy, while the container sees its
    # own cgroup mounted at the root: fall back to the mount root when the path is absent.
    found = []
    directory = mount / path.lstrip("/")
    if not directory.is_dir():
        directory = mount
    while True:
        quota = read_quota(directory)
        if quota is not None:
            found.append(quota)
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent


def _v2_quota(directory: Path) -> float | None:
    quota, _, period = _read(directory / "cpu.max").partition(" ")
    if not period or quota == "max":
        return None
    return int(quota) / int(period)


def _v1_quota(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if not quota or not period or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
