"""uvicorn-worker's `UvicornWorker`, with its known gaps closed.

- The uvicorn server gets the same options as under the uvicorn launcher (`server_options`):
  our protocol, root path, proxy headers, graceful timeout, connection limit, no Server header.
- SIGQUIT, gunicorn's "quick shutdown", stops the worker at once (uvicorn-worker only flags
  gunicorn's own loop, which this worker never runs, so workers served on until SIGKILL).
- The heartbeat to gunicorn comes from the event loop for the worker's whole life, draining
  included, and a worker whose master is gone (killed with SIGKILL) shuts itself down.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import uvicorn_worker
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server

from launchers import uvicorn
from launchers.heartbeat import Heartbeat
from launchers.installed import warn_if_lacking
from launchers.settings import Settings


class UvicornWorker(uvicorn_worker.UvicornWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.settings = Settings()
        options = uvicorn.server_options(self.settings)
        limits = options.pop("limits")
        # CONFIG_KWARGS is uvicorn-worker's hook for extra uvicorn.Config arguments; it is read
        # in the parent's __init__, so it must be complete before that runs.
        self.CONFIG_KWARGS = {**uvicorn_worker.UvicornWorker.CONFIG_KWARGS, **options}
        super().__init__(*args, **kwargs)
        self.config.limits = limits  # read by our protocol
        self.heartbeat = Heartbeat(manager=self.ppid, beat=self.notify)
        self.server: Server | None = None

    async def callback_notify(self) -> None:
        await self.heartbeat()

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        warn_if_lacking(self.settings.app)
        self.server = Server(config=self.config)
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, self._quit)
        # The plain sockets inside gunicorn's wrappers: uvicorn closes what it is given at
        # shutdown, and a wrapper whose socket asyncio has closed already logs EBADF.
        await self.server.serve(sockets=[getattr(s, "sock", s) for s in self.sockets])
        if not self.server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _quit(self) -> None:
        assert self.server is not None
        self.server.should_exit = self.server.force_exit = True
