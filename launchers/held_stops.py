"""Stop signals held while a worker starts, until its event loop can hear them.

uvloop, the workers' loop when installed, reads signals only while the loop runs: a stop sent
while a worker imports the app, or while its loop is stopped, is lost, and the worker serves on
until its manager kills it at GRACEFUL_TIMEOUT. A worker holds them (blocked, so the kernel keeps
them pending) from its fork, and releases them once a handler that can act on them is in place.
"""

from __future__ import annotations

import signal

STOPS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


def hold() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)


def release() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
