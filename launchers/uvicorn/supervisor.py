"""uvicorn's multiprocess manager, made to replace workers whose event loop is stuck.

On top of uvicorn's `Multiprocess` (spawn, SIGHUP rolling restart, SIGTTIN/SIGTTOU scaling, dead
worker replacement): a worker whose heartbeat is older than `WORKER_TIMEOUT` is killed and
replaced; SIGQUIT, or a second SIGINT while draining, stops every worker at once. A worker gone
for any reason has its live metrics gauges dropped.
"""

from __future__ import annotations

import logging
import signal
import socket
import time

from uvicorn.supervisors.multiprocess import Multiprocess, Process

from launchers.heartbeat import BeatFiles
from launchers.metrics_dir import mark_dead
from launchers.uvicorn.limits import Config

logger = logging.getLogger("uvicorn.error")


class Supervisor(Multiprocess):
    def __init__(self, config: Config, sockets: list[socket.socket], beats: BeatFiles) -> None:
        super().__init__(config, sockets)
        self.beats = beats
        self.worker_timeout = config.limits.worker_timeout
        self.first_seen: dict[int, float] = {}
        self.at_once = False

    def keep_subprocess_alive(self) -> None:
        if not self.should_exit.is_set():
            for process in self.processes:
                self._kill_if_stuck(process)
        super().keep_subprocess_alive()  # replaces the dead, the killed included
        alive = {process.pid for process in self.processes}
        for pid in set(self.first_seen) - alive:  # died, killed, or stopped by HUP or TTOU
            del self.first_seen[pid]
            self.beats.forget(pid)
            mark_dead(pid)

    def _kill_if_stuck(self, process: Process) -> None:
        pid = process.pid
        if pid is None or not process.process.is_alive():
            return
        age = self.beats.age(pid, self.first_seen.setdefault(pid, time.time()))
        if age > self.worker_timeout:
            logger.error(
                "Worker [%d] event loop gave no sign of life for %.0f s, more than "
                "WORKER_TIMEOUT: killing it",
                pid,
                age,
            )
            # Kill only the process: uvicorn's check below then finds it dead and replaces it.
            process.process.kill()
            process.process.join()

    def terminate_all(self) -> None:
        # Close our copy of the listening socket first, as gunicorn's master does: once the
        # draining workers close theirs, new connections are refused at once instead of queueing
        # in a backlog that nobody will ever accept from.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()

    def handle_quit(self) -> None:
        logger.info("Received SIGQUIT, stopping every worker at once.")
        self.at_once = True
        self.should_exit.set()

    def join_all(self) -> None:
        """Wait for workers to drain, unless told to stop at once meanwhile."""
        for process in self.processes:
            while process.process.exitcode is None:
                process.process.join(0.1)
                if self.at_once or {signal.SIGINT, signal.SIGQUIT} & set(self.signal_queue):
                    self._kill_all()

    def _kill_all(self) -> None:
        if not self.at_once:
            logger.info("Stopping every worker at once.")
        self.at_once = True
        for process in self.processes:
            if process.process.exitcode is None:
                process.process.kill()
