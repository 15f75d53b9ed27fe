"""uvicorn-worker's `UvicornWorker`, passing on to uvicorn the gunicorn settings it leaves out."""

from __future__ import annotations

from typing import Any

import uvicorn_worker


class UvicornWorker(uvicorn_worker.UvicornWorker):
    def __init__(
        self, age: int, ppid: int, sockets: list[Any], app: Any, timeout: float, cfg: Any, log: Any
    ) -> None:
        # CONFIG_KWARGS is uvicorn-worker's hook for extra uvicorn.Config arguments; it is read
        # in the parent's __init__, so it must be complete before that runs.
        self.CONFIG_KWARGS = {
            **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
            "root_path": cfg.root_path,
            "proxy_headers": bool(cfg.forwarded_allow_ips),
            # Without this uvicorn waits for in-flight requests for ever, and gunicorn ends the
            # wait with SIGKILL after graceful_timeout: bound it on uvicorn's side as well.
            "timeout_graceful_shutdown": cfg.graceful_timeout,
        }
        super().__init__(age, ppid, sockets, app, timeout, cfg, log)
