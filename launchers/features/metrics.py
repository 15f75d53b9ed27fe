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


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of every worker whose process is gone, however it ended."""
    dead = set()
    for path in directory.glob("gauge_live*.db"):
        if (match := _LIVE_GAUGE_FILE.fullmatch(path.name)) is None:
            continue
        worker = int(match[1])
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            dead.add(worker)
        except PermissionError:  # alive, another user's
            pass
    for worker in dead:
        with suppress(FileNotFoundError):  # another worker's scrape got there first
            mark_process_dead(worker, str(directory))  # type: ignore[no-untyped-call]


def _exposition() -> bytes:
    registry = REGISTRY
    if multiprocess():
        forget_dead_workers(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        record_process_figures()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
