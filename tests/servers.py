"""Real servers for tests: started as subprocesses on free ports, always stopped, workers too."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from launchers.settings import Settings
from tests.scrape import FRESH

ROOT = Path(__file__).resolve().parent.parent
KIT_APP = "tests.kitapp:app"  # what `serve` serves unless told: the kit's tests need no sample
SAMPLE_APP = "app.main:app"  # the sample's tests name it


def _sample_settings() -> set[str]:
    try:  # the sample's own settings, as long as it has them
        from app.settings import Settings as SampleSettings
    except ImportError:
        return set()
    return set(SampleSettings.model_fields)


# Settings a developer's shell may carry; tests start from none of them (nor any OTEL_*).
SETTINGS_ENV = {name.upper() for name in {*Settings.model_fields, *_sample_settings()}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_setting(name: str) -> bool:
    return name.upper() in SETTINGS_ENV or name.upper().startswith("OTEL_")


def clean_env(**settings: str) -> dict[str, str]:
    """The environment a test's process starts with: none of the shell's settings, and the
    repository importable, so that `tests.kitapp` is found from any working directory."""
    env = {k: v for k, v in os.environ.items() if not is_setting(k)}
    return env | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)} | settings


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context that trusts `ca` and nothing else."""
    return ssl.create_default_context(cafile=str(ca))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    verify: ssl.SSLContext | bool = True

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(argv: list[str], workdir: Path, ca: Path | None = None, **settings: str) -> Server:
    """Start `argv` in its own process group on a free port, its output in a log in `workdir`.

    It serves `APP` if given, else the kit's test app. The working directory is a fresh one, so
    no `.env` of the developer's leaks in. With `ca`, the server speaks HTTPS at
    https://localhost:PORT and `Server.verify` trusts only that CA. The caller `stop`s it.
    """
    port = free_port()
    settings.setdefault("APP", KIT_APP)
    # In the working directory, even for `make -C repository`: tests never write to the clone.
    settings.setdefault("DATABASE_URL", f"sqlite:///{workdir}/data/app.db")
    env = clean_env(PORT=str(port), **settings)
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"https://localhost:{port}" if ca else f"http://127.0.0.1:{port}"
    return Server(proc, url, log, trusting(ca) if ca else True)


@contextmanager
def serve(
    argv: list[str],
    workdir: Path,
    ready: str = "/healthz",
    timeout: float = 30,
    ca: Path | None = None,
    **settings: str,
) -> Iterator[Server]:
    """`start` it, yield once `ready` answers 200, and stop it, workers too."""
    server = start(argv, workdir, ca, **settings)
    try:
        wait_ready(server, ready, timeout)
        yield server
    finally:
        stop(server.proc)


def launcher(name: str) -> list[str]:
    return [sys.executable, "-m", "launchers", name]


def run_launcher(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m launchers ARGS` as a user runs it, to its end: a real process, its output."""
    return subprocess.run(
        [sys.executable, "-m", "launchers", *args],
        cwd=cwd,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def serving_pids(url: str) -> set[int]:
    """Pids answering `/info` now, over a few fresh connections (a worker still starting may
    refuse, or answer with an error)."""
    pids = set()
    for _ in range(20):
        with suppress(httpx.HTTPError, ValueError):
            pids.add(int(httpx.get(url + "/info", headers=FRESH, timeout=2).json()["pid"]))
    return pids


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


async def until(
    predicate: Callable[[], bool], timeout: float = 20, what: str = "condition"
) -> None:
    """`wait_for` in a coroutine: the event loop runs meanwhile (a load, a request held)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


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


def replaced(manager: int, old: set[int], timeout: float = 30) -> set[int]:
    """The manager's workers, as many as `old`, once none of `old` is among them."""
    deadline = time.monotonic() + timeout
    while (current := settled_workers(manager, len(old), timeout)) & old:
        assert time.monotonic() < deadline, f"old workers {current & old} never all replaced"
    return current


def running() -> set[int]:
    """Pids of every process that runs (zombies excluded)."""
    return {p.pid for p in _processes()}


def tree(root: int) -> list[int]:
    """A process and all its running descendants, `root` first."""
    children: dict[int, list[int]] = {}
    for process in _processes():
        children.setdefault(process.ppid, []).append(process.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


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


def refused(port: int) -> bool:
    """Whether a connection to 127.0.0.1:`port` is refused (nothing listens there any more)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def with_asgi(app: Any, check: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run `check` against `app` through httpx's ASGI transport, its lifespan running."""

    async def go() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await check(client)

    asyncio.run(go())
