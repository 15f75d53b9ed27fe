"""Each launcher for real: a subprocess on a free port, two workers, real sockets and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.servers import (
    ROOT,
    Server,
    group_alive,
    launcher,
    serve,
    settled_workers,
    start,
    stop,
    wait_for,
    wait_ready,
    workers,
)

LABELS = {
    "uvicorn": "uvicorn",
    "gunicorn": "gunicorn",
    "fastapi": "fastapi-cli",
    "granian": "granian",
}
GRACEFUL = 5


def worker_pids(url: str, timeout: float = 20) -> set[int]:
    """Pids of two different workers, proven by asking one while the other is busy.

    A worker burning CPU on its event loop cannot accept, so `/info` requests on fresh
    connections meanwhile must be answered by another worker (once it has started).
    """
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    with ThreadPoolExecutor(1) as pool:
        while time.monotonic() < deadline and len(seen) < 2:
            busy = pool.submit(httpx.get, url + "/cpu", params={"ms": 500}, timeout=10)
            while not busy.done():
                seen.add(httpx.get(url + "/info", timeout=10).json()["pid"])
            seen.add(busy.result().json()["pid"])
    return seen


def stop_with(server: Server, sig: signal.Signals, within: float) -> int:
    started = time.monotonic()
    server.proc.send_signal(sig)
    returncode = server.proc.wait(timeout=within)
    assert time.monotonic() - started < within
    assert not group_alive(server.proc.pid), "a worker outlived its manager"
    return returncode


@pytest.mark.parametrize("name", list(LABELS))
def test_two_workers_serve_and_stop_on_sigterm(name: str, tmp_path: Path) -> None:
    argv = launcher(name)
    with serve(argv, tmp_path, WEB_CONCURRENCY="2", GRACEFUL_TIMEOUT=str(GRACEFUL)) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(server.url + "/readyz").status_code == 200
        info = httpx.get(server.url + "/info").json()
        assert (info["launcher"], info["workers"], info["tls"]) == (LABELS[name], 2, False)
        assert info["ppid"] == server.proc.pid, "workers are children of the manager"
        pids = worker_pids(server.url)
        assert len(pids) == 2
        assert server.proc.pid not in pids
        assert stop_with(server, signal.SIGTERM, within=GRACEFUL) == 0
        assert "with 2 workers: WEB_CONCURRENCY=2" in server.output()


def test_granian_manager_ignores_the_scaling_signals(tmp_path: Path) -> None:
    """granian cannot add or remove workers, and SIGTTIN's and SIGTTOU's default action stops a
    process: its manager must ignore them. Started by a shell with job control, as from a
    terminal: the kernel discards those signals for a process group with no parent in its own
    session, as `serve` makes, so that would prove nothing."""
    script = 'set -m; "$@" & echo $! > manager.pid; wait $!'
    server = start(
        ["bash", "-c", script, "bash", *launcher("granian")], tmp_path, WEB_CONCURRENCY="1"
    )
    shell = server.proc
    pid_file = tmp_path / "manager.pid"
    groups = {shell.pid}
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 10, "the pid")
        manager = int(pid_file.read_text())
        groups.add(manager)  # job control gave it a process group of its own
        wait_ready(server, "/healthz", 30)
        os.kill(manager, signal.SIGTTIN)
        os.kill(manager, signal.SIGTTOU)
        # A manager they stopped would not act on SIGTERM: the exit proves them ignored.
        os.kill(manager, signal.SIGTERM)
        assert shell.wait(timeout=GRACEFUL) == 0
    finally:
        for group in groups:
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shell.wait(timeout=10)


@pytest.mark.parametrize("app", ["importing", "plain", "kit"])
def test_granian_worker_keeps_a_stop_asked_while_it_starts(app: str, tmp_path: Path) -> None:
    """A forked granian worker ran its manager's signal handlers until its event loop took over,
    and uvloop drops a signal that arrives while its loop is stopped, as it is between the
    lifespan and serving (`launchers/granian/signals.py`): a stop then waited for the kill after
    the graceful timeout. Now it is kept, with the kit's features or without."""
    server = start(
        launcher("granian"),
        tmp_path,
        APP=f"tests.stopwindow:{app}",
        WEB_CONCURRENCY="1",
        GRACEFUL_TIMEOUT="30",
    )
    try:
        assert server.proc.wait(timeout=25) == 0, "stopped well before the graceful timeout"
        output = server.output()
        moment = "while the app is loaded" if app == "importing" else "before serving"
        assert f"stop asked for {moment}" in output, "asked in that window"
        assert "SIGTERM heard: True" in output
        assert "refused to gracefully stop" not in output
        assert "Stopped worker-1" in output
        assert not group_alive(server.proc.pid)
    finally:
        stop(server.proc)


@pytest.mark.parametrize("preload", [False, True])
def test_gunicorn_master_is_the_launchers_process(preload: bool, tmp_path: Path) -> None:
    """gunicorn runs in the launcher's own process, PRELOAD or not: the process the launcher
    started as is gunicorn's master, which signals reach and workers are children of."""
    preloading = str(preload).lower()
    with serve(launcher("gunicorn"), tmp_path, WEB_CONCURRENCY="2", PRELOAD=preloading) as server:
        assert httpx.get(server.url + "/info").json()["ppid"] == server.proc.pid
        argv = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert argv[1:3] == [b"-m", b"launchers"]
        assert len(worker_pids(server.url)) == 2
        assert stop_with(server, signal.SIGTERM, within=GRACEFUL) == 0
    assert "Traceback" not in server.output()


def test_computed_worker_count_is_explained(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, MAX_WORKERS="1") as server:
        assert httpx.get(server.url + "/info").json()["workers"] == 1
        assert stop_with(server, signal.SIGINT, within=GRACEFUL) in (0, -signal.SIGINT)
    assert "with 1 worker: " in server.output()
    assert "capped by MAX_WORKERS=1" in server.output() or "1 CPU available" in server.output()


def test_root_path_and_proxy_headers_reach_the_gunicorn_workers(tmp_path: Path) -> None:
    """Settings uvicorn-worker leaves unmapped are passed by our worker class."""
    with serve(launcher("gunicorn"), tmp_path, WEB_CONCURRENCY="1", ROOT_PATH="/api") as server:
        assert httpx.get(server.url + "/info").json()["root_path"] == "/api"
        docs = httpx.get(server.url + "/openapi.json").json()
        assert docs["servers"] == [{"url": "/api"}]


RELOADED = {"uvicorn": "detected changes in", "granian": "Changes detected"}


def new_worker(server: Server, old: int) -> int:
    """The pid that serves once the worker `old` has been replaced."""
    pids = [old]

    def replaced() -> bool:
        with suppress(httpx.TransportError):  # between the old worker and the new one
            pids.append(httpx.get(server.url + "/info", timeout=2).json()["pid"])
        return pids[-1] != old

    wait_for(replaced, 20, "a new worker")
    return pids[-1]


@pytest.mark.parametrize("name", ["uvicorn", "granian"])
def test_reload_restarts_the_worker_on_a_code_change(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, RELOAD="true") as server:
        first = httpx.get(server.url + "/info").json()["pid"]
        (tmp_path / "changed.py").write_text("x = 1\n")
        second = new_worker(server, first)
        # Only Python files count: not this text file, nor the server's log, which each request
        # above wrote to in the working directory. Either would have made a reload of its own.
        (tmp_path / "notes.txt").write_text("x\n")
        (tmp_path / "again.py").write_text("x = 2\n")
        new_worker(server, second)
    reloads = [line for line in server.output().splitlines() if RELOADED[name] in line]
    assert len(reloads) == 2, reloads
    assert not [line for line in reloads if "notes.txt" in line or ".log" in line]
    assert "with 1 worker: RELOAD=true" in server.output()


def test_make_run_serves_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    argv = ["make", "--no-print-directory", "-C", str(ROOT), "run"]
    with serve(argv, tmp_path, WEB_CONCURRENCY="2") as server:
        info = httpx.get(server.url + "/info").json()
        assert (info["launcher"], info["workers"]) == ("uvicorn", 2)
        assert len(worker_pids(server.url)) == 2
        # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGINT)
        server.proc.wait(timeout=20)
        assert time.monotonic() - started < 20
        assert not group_alive(server.proc.pid)
    assert "uvicorn: serving tests.kitapp:app at http://127.0.0.1:" in server.output(), "APP"
    assert "Traceback" not in server.output()


def test_make_run_with_bad_setting_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), "run"],
        env={**os.environ, "WEB_CONCURRENCY": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WEB_CONCURRENCY='abc' is not a whole number" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_manager_signals_replace_and_scale_workers(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        manager = server.proc.pid
        before = settled_workers(manager, 2)
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(workers(manager)) == 2 and not workers(manager) & before)
        assert len(worker_pids(server.url)) == 2, "the new workers serve"
        server.proc.send_signal(signal.SIGTTIN)
        wait_for(lambda: len(workers(manager)) == 3)
        server.proc.send_signal(signal.SIGTTOU)
        wait_for(lambda: len(workers(manager)) == 2)
        assert httpx.get(server.url + "/healthz").status_code == 200
