"""The directory where workers share their Prometheus metrics (see `launchers.features.metrics`).

It must be empty when a server starts, or the counters of an earlier run would be added to this
one's, and it must be known to every worker before it imports prometheus-client: the managers
(uvicorn's, gunicorn's) make it before their first worker and remove it when they exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """Set PROMETHEUS_MULTIPROC_DIR for the workers to come: the one given (the launcher has
    emptied it), or a fresh temporary directory that is removed on exit."""
    given = os.environ.get(VARIABLE)
    if given:
        yield Path(given)
        return
    # Not a TemporaryDirectory: its finalizer also runs at the exit of every process forked from
    # this one, so the first gunicorn worker to exit would remove the directory under the rest.
    directory = tempfile.mkdtemp(prefix="fastapi-metrics-")
    owner = os.getpid()
    os.environ[VARIABLE] = directory
    try:
        yield Path(directory)
    finally:
        os.environ.pop(VARIABLE, None)
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)


def empty(directory: Path) -> None:
    """Make `directory` ready for a new run: created if missing, earlier runs' files removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges; its counters stay counted."""
    # Imported here, not at the top: prometheus-client picks its storage when first imported, and
    # gunicorn's workers inherit the master's modules. Imported in the master before
    # PROMETHEUS_MULTIPROC_DIR is set, it would make every worker count in its own memory.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
