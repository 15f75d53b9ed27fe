"""Prometheus metrics that add up across worker processes, whichever worker answers a scrape.

Each worker counts only its own requests, and a scrape lands on one worker: with plain
prometheus-client, `/metrics` would report a different, partial number on every scrape. In
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, which the launchers set before any worker starts)
each worker writes its values to files in that directory, and `/metrics` sums the files of every
worker, the dead included for counters. The manager marks a dead worker's gauges
(`mark_process_dead`) so that live gauges such as requests in progress stay right; a scrape also
drops those of any worker whose process is gone, for managers with no hook to do it (granian's).
"""

from __future__ import annotations

import os
import re
import struct
import time
from contextlib import suppress
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

from launchers.features.batched_values import batched, write_changes
from launchers.pid import pid

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # The library's own hook for its storage, set before any metric below is made: values
    # written once per loop turn (see `batched_values`), filed under a pid asked of the kernel
    # once, not on every write (see `pid`).
    values.ValueClass = batched(values.MultiProcessValue(pid))  # type: ignore[no-untyped-call]

UNMATCHED = "unmatched"  # route label of requests no route matched (404s, early 413s)

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival in the app to its last response byte.",
    ["method", "route"],
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress", "HTTP requests being handled.", multiprocess_mode="livesum"
)

# The standard process figures (memory, CPU, file descriptors), one series per live worker
# (label `pid`): prometheus-client's process collector cannot run in multiprocess mode, so each
# worker copies its own figures into these gauges. Unregistered: in single-process mode the
# default registry's process collector reports them itself.
_PROCESS = ProcessCollector(registry=None)
_FIGURES: dict[str, Gauge] = {}


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def record_process_figures() -> None:
    """Copy this worker's process figures into the shared gauges (multiprocess mode only)."""
    if not multiprocess():
        return
    for family in _PROCESS.collect():
        for sample in family.samples:
            gauge = _FIGURES.get(sample.name)
            if gauge is None:
                gauge = _FIGURES[sample.name] = Gauge(
                    sample.name, family.documentation, registry=None, multiprocess_mode="liveall"
                )
            gauge.set(sample.value)


def forget_this_worker() -> None:
    """Drop this worker's live gauges as it exits (its manager does it too, if it is killed)."""
    if multiprocess():
        write_changes()  # its counts on file first; its gauges are then dropped with the rest
        mark_process_dead(pid())  # type: ignore[no-untyped-call]


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format, summed over every worker. This worker's changes are written
    first (this scrape's own included); the files are read in a thread, off the event loop."""
    write_changes()
    return Response(await run_in_threadpool(_exposition), media_type=CONTENT_TYPE_LATEST)


READS = 3  # attempts at reading every worker's file, a worker starting or dying meanwhile
_WORKER_FILE = re.compile(r"(?P<kind>[a-z_]+)_(?P<pid>\d+)\.db")


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of every worker whose process is gone, however it ended, and the
    files it left empty (killed as it made them), which cannot be read; its counts stay."""
    dead = set()
    for path in directory.glob("*.db"):
        if (match := _WORKER_FILE.fullmatch(path.name)) is None or _alive(int(match["pid"])):
            continue
        if match["kind"].startswith("gauge_live"):
            dead.add(int(match["pid"]))
        elif path.stat().st_size == 0:
            path.unlink(missing_ok=True)
    for worker in dead:
        with suppress(FileNotFoundError):  # another worker's scrape got there first
            mark_process_dead(worker, str(directory))  # type: ignore[no-untyped-call]


def _alive(worker: int) -> bool:
    try:
        os.kill(worker, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _exposition() -> bytes:
    if not multiprocess():
        return generate_latest(REGISTRY)
    forget_dead_workers(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    record_process_figures()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for _ in range(READS - 1):
        try:
            return generate_latest(registry)
        except (FileNotFoundError, struct.error):
            # A worker's file was read as it was made (still empty) or removed (its worker
            # dead) after the listing: read them all again, listing included.
            time.sleep(0.05)
    return generate_latest(registry)
