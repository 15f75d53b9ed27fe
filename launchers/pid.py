"""This process's pid, read once per process instead of once per call.

`os.getpid()` is a system call, dear on a virtual machine, and the access log and the metrics
need the pid several times per request (docs/performance.md). A forked child refreshes it at
once; a spawned one imports this module afresh.
"""

from __future__ import annotations

import os

_pid = [os.getpid()]


def _refresh() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh)


def pid() -> int:
    return _pid[0]
