"""Apps whose worker is told to stop while it starts, where granian's workers used to lose it
(`launchers/granian/signals.py`).

The worker asks its manager to stop, then waits until the manager's SIGTERM has reached it
before it goes on starting:
- `importing`: while the app is loaded, before the worker's event loop handles signals;
- `plain`, `kit`: once the ASGI lifespan has started and before serving, the event loop stopped
  in between (a profiling hook catches the worker's own code running again), without the kit's
  features and with them.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI

from launchers.features import install

ASYNC = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def ask_to_stop(moment: str) -> None:
    """Ask the manager to stop, and wait until its SIGTERM reaches this worker: held meanwhile,
    then left pending for the worker's own handling, which is what the tests check."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print(f"worker {os.getpid()}: stop asked for {moment}", flush=True)
    os.kill(os.getppid(), signal.SIGTERM)
    heard = signal.sigtimedwait({signal.SIGTERM}, 10) is not None
    if heard:
        signal.raise_signal(signal.SIGTERM)  # pending again, as it came
    print(f"worker {os.getpid()}: SIGTERM heard: {heard}", flush=True)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _ask_once_the_loop_stops() -> None:
    worker = sys._getframe(1)  # the lifespan; above it, coroutines, then what runs the loop
    while worker.f_code.co_flags & ASYNC and worker.f_back is not None:
        worker = worker.f_back

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if frame is worker:  # running again: the loop has stopped
            sys.setprofile(None)
            ask_to_stop(f"before serving, in {worker.f_code.co_name}")

    sys.setprofile(hook)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    _ask_once_the_loop_stops()
    yield


plain = FastAPI(lifespan=lifespan)
kit = install(FastAPI(lifespan=lifespan))


def __getattr__(name: str) -> FastAPI:
    if name != "importing":
        raise AttributeError(name)
    ask_to_stop("while the app is loaded")
    app = FastAPI()
    globals()[name] = app  # found directly from now on
    return app
