"""The uvicorn launcher's process: `python -m launchers.uvicorn`.

It builds uvicorn's `Config` from the one `Settings`, through the same translation that
`python -m launchers uvicorn --print` shows, and runs it as `uvicorn.run()` would, but with our
protocol, and our supervisor for several workers (`launchers.uvicorn.single` for one). uvicorn's
CLI has no way to name either, hence this module.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from uvicorn.config import STARTUP_FAILURE
from uvicorn.server import Server
from uvicorn.supervisors import ChangeReload

from launchers import uvicorn
from launchers.heartbeat import BeatFiles, Heartbeat
from launchers.metrics_dir import shared_metrics_dir
from launchers.settings import Settings
from launchers.uvicorn import single
from launchers.uvicorn.limits import Config
from launchers.uvicorn.supervisor import Supervisor


def main() -> int:
    settings = Settings()
    if (settings.web_concurrency or 1) == 1 and not settings.reload:
        config = Config(**uvicorn.config(settings))
        return single.serve(config, single.inherited_socket() or config.bind_socket())
    with (
        shared_metrics_dir(),
        tempfile.TemporaryDirectory(prefix="uvicorn-heartbeats-") as directory,
    ):
        beats = BeatFiles(Path(directory))
        heartbeat = Heartbeat(manager=os.getpid(), beat=beats)
        config = Config(**uvicorn.config(settings), callback_notify=heartbeat, timeout_notify=1)
        sock = config.bind_socket()
        if config.should_reload:
            ChangeReload(config, target=Server(config).run, sockets=[sock]).run()
            return 0
        supervisor = Supervisor(config, [sock], beats)
        supervisor.run()
        failed = any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
        return STARTUP_FAILURE if failed else 0


if __name__ == "__main__":
    sys.exit(main())
