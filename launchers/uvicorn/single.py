"""One worker, served in the launcher's own process: no manager beside it.

A manager costs a process, and under Kubernetes (one worker per pod) the kubelet already manages:
it restarts a container whose process died or whose liveness probe fails. So with one worker the
uvicorn launcher runs uvicorn's `Server` alone, as `uvicorn APP` does, and this process does for
itself what the supervisor does for its workers. What would replace the worker (SIGHUP,
`MAX_REQUESTS`, an event loop stuck past `WORKER_TIMEOUT`) restarts the process in place: it
drains (unless stuck), then execs the same command with its listening socket kept open, so new
connections wait in the backlog meanwhile instead of being refused. SIGTERM and SIGINT drain and
exit; SIGQUIT, or a second SIGINT, stops at once. SIGTTIN and SIGTTOU cannot add or remove a
worker here: they are logged and ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from uvicorn.server import Server

from launchers.uvicorn.limits import Config, limits_of

logger = logging.getLogger("uvicorn.error")

# The listening socket a restarted process inherits, by file descriptor.
INHERITED = "LAUNCHERS_LISTENING_FD"


def inherited_socket() -> socket.socket | None:
    """The socket a restart left open for this process, if it is one."""
    fd = os.environ.pop(INHERITED, None)
    return socket.socket(fileno=int(fd)) if fd else None


class SingleServer(Server):
    def __init__(self, config: Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock
        self.kept: int | None = None  # the socket's descriptor, kept open for the next process
        self.beat = time.monotonic()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        signal.signal(signal.SIGHUP, self._reload)
        signal.signal(signal.SIGQUIT, self._quit)
        for sig in (signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, self._not_scaled)
        threading.Thread(target=self._watch, name="event loop watchdog", daemon=True).start()
        await super().serve(sockets)

    async def on_tick(self, counter: int) -> bool:
        self.beat = time.monotonic()  # from the event loop: a blocked loop stops it
        done = await super().on_tick(counter)
        if done and not self.should_exit:  # MAX_REQUESTS reached: drain, then start afresh
            self._keep_socket()
        return done

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # Stopped: the process exits 0, as the managers do, rather than by the signal that
        # uvicorn raises again once it has stopped (for SIGINT, a KeyboardInterrupt traceback).
        self._captured_signals.clear()

    def _reload(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            return  # stopping already, or the server raising this signal again as it ends
        logger.info("Received SIGHUP: draining, then restarting this process in place.")
        self._keep_socket()
        # The SIGTERM handler: uvicorn's, chained by the readiness probe and the drain.
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(sig, frame)

    def _quit(self, sig: int, frame: FrameType | None) -> None:
        logger.info("Received SIGQUIT, stopping at once.")
        _flush_logs()
        os._exit(0)  # what the requests in flight would have answered is dropped, as asked

    def _not_scaled(self, sig: int, frame: FrameType | None) -> None:
        logger.warning(
            "%s ignored: one worker serves in this process, which cannot add or remove "
            "workers. Set WEB_CONCURRENCY and restart for more.",
            signal.Signals(sig).name,
        )

    def _watch(self) -> None:
        timeout = limits_of(self.config).worker_timeout
        while not self.should_exit:
            time.sleep(1)
            age = time.monotonic() - self.beat
            if self.started and age > timeout and not self.should_exit:
                logger.error(
                    "The event loop gave no sign of life for %.0f s, more than WORKER_TIMEOUT: "
                    "restarting this process in place",
                    age,
                )
                self._keep_socket()
                restart(self.kept)

    def _keep_socket(self) -> None:
        if self.kept is None:
            self.kept = os.dup(self.sock.fileno())
            os.set_inheritable(self.kept, True)


def serve(config: Config, sock: socket.socket) -> int:
    server = SingleServer(config, sock)
    server.run(sockets=[sock])
    if server.kept is not None:
        restart(server.kept)
    return 0


def restart(kept: int | None) -> None:
    """Become this server again, a new process image, inheriting the listening socket. The
    server's own command, not the launcher's: the settings were checked and the migrations run
    when the launcher started, and the environment it set is inherited."""
    _flush_logs()
    os.environ[INHERITED] = str(kept)
    interpreter = sys.orig_argv[1 : sys.orig_argv.index("-m")] if "-m" in sys.orig_argv else []
    os.execv(sys.executable, [sys.executable, *interpreter, "-m", __package__])


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
