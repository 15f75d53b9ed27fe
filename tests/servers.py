"""Real servers for tests: started as subprocesses on free ports, always stopped, workers too."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Settings a developer's shell may carry; tests start from none of them.
SETTINGS_ENV = {name.upper() for name in Settings.model_fields} | {"OTEL_SERVICE_NAME"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV}
    return env | {"PYTHONUNBUFFERED": "1"} | settings


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context that trusts `ca` and nothing else."""
    return ssl.create_default_context(cafile=str(ca))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    verify: ssl.SSLContext | bool = True

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    argv: list[str],
    workdir: Path,
    ready: str = "/healthz",
    timeout: float = 30,
    ca: Path | None = None,
    **settings: str,
) -> Iterator[Server]:
    """Start `argv` in its own process group and yield once `ready` answers 200.

    The working directory is a fresh one, so no `.env` of the developer's leaks in. With `ca`,
    the server speaks HTTPS at https://localhost:PORT and `Server.verify` trusts only that CA.
    """
    port = free_port()
    # In the working directory, even for `make -C repository`: tests never write to the clone.
    settings.setdefault("DATABASE_URL", f"sqlite:///{workdir}/data/app.db")
    env = clean_env(PORT=str(port), **settings)
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"https://localhost:{port}" if ca else f"http://127.0.0.1:{port}"
    server = Server(proc, url, log, trusting(ca) if ca else True)
    try:
        wait_ready(server, ready, timeout)
        yield server
    finally:
        stop(proc)


def launcher(name: str) -> list[str]:
    return [sys.executable, "-m", "launchers", name]


def wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + path, timeout=1, verify=server.verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server not ready in {timeout} s:\n{server.output()}")


def wait_for(predicate: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the whole process group: the manager and every worker it started."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs, after a grace of 5 s. Exited ones that nobody
    reaped (zombies: the multiprocessing resource tracker is re-parented to a PID 1 that may not
    reap) don't count."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not [p for p in _processes() if p.pgid == pgid]:
            return False
        time.sleep(0.05)
    return True


def workers(manager: int) -> set[int]:
    """Worker processes of a manager: its children, less multiprocessing's resource tracker."""
    return {
        p.pid for p in _processes() if p.ppid == manager and b"resource_tracker" not in p.cmdline
    }


def settled_workers(manager: int, count: int, timeout: float = 20) -> set[int]:
    """The manager's `count` workers, once the same set is seen twice 0.2 s apart (a process
    between fork and exec briefly looks like one more worker)."""
    deadline = time.monotonic() + timeout
    previous: set[int] = set()
    while time.monotonic() < deadline:
        current = workers(manager)
        if len(current) == count and current == previous:
            return current
        previous = current
        time.sleep(0.2)
    raise AssertionError(f"manager {manager} did not settle on {count} workers: {previous}")


def running() -> set[int]:
    """Pids of every process that runs (zombies excluded)."""
    return {p.pid for p in _processes()}


@dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    pgid: int
    cmdline: bytes


def _processes() -> Iterator[_Process]:
    """Running (not zombie) processes, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...; comm may hold spaces, so split after its ')'.
            state, ppid, pgid = stat.read_text().rpartition(")")[2].split()[:3]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # exited while we looked
        if state != "Z":
            yield _Process(int(stat.parent.name), int(ppid), int(pgid), cmdline)
