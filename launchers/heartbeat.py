"""Proof of life from a worker's event loop, and a worker that notices its manager is gone.

uvicorn's own worker health check is answered by a thread, so a worker whose event loop is
blocked still looks healthy to its manager. This heartbeat is written *from the event loop*, every
second: a blocked loop stops it, and the manager kills and replaces the worker. It rides on
uvicorn's `callback_notify` hook (the one gunicorn's workers use), whose first call starts a task
that beats for the rest of the loop's life, through a graceful drain too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("uvicorn.error")


@dataclass
class Heartbeat:
    manager: int  # pid of the manager; when the worker's parent changes, it is gone
    beat: Callable[[], None]
    interval: float = 1.0
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_task": None}  # a worker starts its own task

    async def __call__(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.beat()
            if os.getppid() != self.manager:
                logger.error(
                    "Manager [%d] is gone: shutting down worker [%d]", self.manager, os.getpid()
                )
                self.manager = os.getppid()
                os.kill(os.getpid(), signal.SIGTERM)  # the server's own graceful shutdown
            await asyncio.sleep(self.interval)


@dataclass(frozen=True)
class BeatFiles:
    """One file per worker pid, touched on each beat; the manager reads its age."""

    directory: Path

    def __call__(self) -> None:
        (self.directory / str(os.getpid())).touch()

    def age(self, pid: int, started: float) -> float:
        """Seconds since worker `pid` last beat, or since `started` if it never did."""
        try:
            last = (self.directory / str(pid)).stat().st_mtime
        except FileNotFoundError:
            last = started
        return time.time() - max(last, started)

    def forget(self, pid: int) -> None:
        (self.directory / str(pid)).unlink(missing_ok=True)
