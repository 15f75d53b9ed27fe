"""Multiprocess metric values written to their files once per turn of the event loop.

In multiprocess mode every change of a value (an increment, a set) is a locked write to the
worker's memory-mapped file: five per request here (the request counted, its duration's sum and
bucket, requests in progress up and down), a share of a worker's throughput that shows on a small
endpoint (docs/performance.md). Changes made on the event loop are added up in memory instead
and written as the loop's turn ends: a turn that answers 50 requests writes each value once. A
value that follows a state changing many times a turn (requests in progress) is set once, just
before the write (`before_write`). A scrape writes first, so it sees every value as of its own
request. Changes from other threads (`/metrics` reads in one) are written at once, as the
library does; what is pending is written at exit too.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from threading import get_ident
from typing import Any


def batched(mmaped: type) -> type:
    """A value class for `prometheus_client.values.ValueClass`, the library's own hook for its
    storage, around `mmaped`: the class `values.MultiProcessValue()` returns."""

    class BatchedValue:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._file = mmaped(*args, **kwargs)
            self._delta = 0.0  # added on the loop since its last write
            self._set: tuple[float, float | None] | None = None  # set on the loop since then
            self._changed = False

        def inc(self, amount: float) -> None:
            # The common case first, without a call: due this turn, and on the loop's thread.
            if (self._changed and get_ident() == _LOOP_THREAD[0]) or self._on_loop():
                self._delta += amount
            else:
                self._file.inc(amount)

        def set(self, value: float, timestamp: float | None = None) -> None:
            if self._on_loop():
                self._set, self._delta = (value, timestamp), 0.0
            else:
                self._file.set(value, timestamp)

        def get(self) -> float:
            base = self._file.get() if self._set is None else self._set[0]
            return float(base + self._delta)

        def set_exemplar(self, exemplar: Any) -> None:
            pass  # not kept in multiprocess mode (prometheus-client's own value drops them too)

        def get_exemplar(self) -> None:
            return None

        def _on_loop(self) -> bool:
            if self._changed:  # due to be written as the loop's turn ends: is this its thread?
                return get_ident() == _LOOP_THREAD[0]
            # Asked only once a turn: before Python 3.12, it makes a system call (getpid).
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False  # another thread: its change is written at once
            _LOOP_THREAD[0] = get_ident()
            self._changed = True
            _CHANGED.append(self)
            _write_soon(loop)
            return True

        def write(self) -> None:
            if self._set is not None:
                self._file.set(*self._set)
                self._set = None
            if self._delta:
                self._file.inc(self._delta)
                self._delta = 0.0
            self._changed = False

    return BatchedValue


_CHANGED: list[Any] = []  # the values changed on the loop during this turn
_LOOP_THREAD = [0]  # the thread of the loop that will write them
_BEFORE: list[Callable[[], None]] = []  # called as the changes are next written
_DUE = [False]  # a write is scheduled on the loop


def before_write(callback: Callable[[], None]) -> None:
    """Call `callback` once, just before the changes are next written (as this loop turn ends,
    or sooner if a scrape asks): to set a value from a state that changes many times a turn."""
    _BEFORE.append(callback)
    try:
        _write_soon(asyncio.get_running_loop())
    except RuntimeError:
        write_changes()


def _write_soon(loop: asyncio.AbstractEventLoop) -> None:
    if not _DUE[0]:
        _DUE[0] = True
        loop.call_soon(write_changes)


def write_changes() -> None:
    # Still due while the callbacks run: the values they change are written below, not later.
    while _BEFORE:
        _BEFORE.pop()()
    for value in _CHANGED:
        value.write()
    _CHANGED.clear()
    _DUE[0] = False


atexit.register(write_changes)
