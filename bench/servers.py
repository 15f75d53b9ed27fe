"""What the bench runs: each configuration as a command, started, timed, weighed and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import KIT_APP, ROOT, free_port, tree

PY = sys.executable

# Every configuration serves APP (the reference points excepted): by default the kit's test app,
# so that the bench needs nothing of the sample. What it asks of an app: a small JSON document at
# /info, and two loads, CPU-bound and awaiting.
APP = os.environ.get("APP") or KIT_APP
INFO = "/info"
CPU = "/cpu?ms=2"
SLEEP = "/sleep?seconds=0.05"
# Start-ups measured a round: each takes well under a second, and one start can differ from the
# next by a tenth, the margin of the goals measured on them.
STARTS = 3


@dataclass(frozen=True)
class Config:
    name: str
    argv: Callable[[int, int], list[str]]  # (port, workers) -> command
    env: dict[str, str] = field(default_factory=dict)
    ours: bool = False  # one of our launchers: PORT and WEB_CONCURRENCY come from the environment


def ours(name: str, label: str = "", **env: str) -> Config:
    argv = [PY, "-m", "launchers", name]
    return Config(f"ours: {name}{label}", lambda port, n: argv, {"APP": APP, **env}, ours=True)


def configs() -> list[Config]:
    """Our launchers, the peers a user would otherwise run on the same app, and the reference
    points."""
    return [
        ours("uvicorn"),
        ours("gunicorn"),
        ours("gunicorn", ", PRELOAD", PRELOAD="true"),
        ours("fastapi"),
        ours("granian"),
        ours("gunicorn-asgi"),
        Config("fastapi run", lambda p, n: _fastapi_run(APP, p, n)),
        Config("uvicorn", lambda p, n: [PY, "-m", "uvicorn", APP, *_uvicorn(p, n)]),
        Config(
            "gunicorn + UvicornWorker",
            lambda p, n: [
                *[PY, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker"],
                *["-w", str(n), "-b", f"127.0.0.1:{p}", APP],
            ],
        ),
        Config(
            "granian",
            lambda p, n: [
                *[PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"],
                *["--port", str(p), "--workers", str(n), APP],
            ],
        ),
        Config(
            "gunicorn -k asgi",
            lambda p, n: [
                *[PY, "-m", "gunicorn", "-k", "asgi", "--no-control-socket"],
                *["-w", str(n), "-b", f"127.0.0.1:{p}", APP],
            ],
        ),
        Config("bare FastAPI, fastapi run", lambda p, n: _fastapi_run("bench.apps:bare", p, n)),
        Config(
            "raw ASGI, uvicorn",
            lambda p, n: [
                *[PY, "-m", "uvicorn", "bench.apps:raw", *_uvicorn(p, n)],
                *["--no-access-log", "--log-level", "warning"],
            ],
        ),
    ]


def _fastapi_run(app: str, port: int, workers: int) -> list[str]:
    return [PY, "-m", "fastapi", "run", "--entrypoint", app, "--port", str(port)] + (
        ["--workers", str(workers)] if workers > 1 else []
    )


def _uvicorn(port: int, workers: int) -> list[str]:
    return ["--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    started_in: float  # seconds from launch to every worker serving


def start(
    config: Config,
    workers: int,
    workdir: Path,
    tls: tuple[Path, Path] | None = None,
    cpus: set[int] | None = None,
) -> Running:
    """Launch `config` and wait until all its workers serve; on `cpus` if given (the manager's
    children inherit them)."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "PORT": str(port)} | config.env
    env["WEB_CONCURRENCY"] = str(workers)
    if tls:
        env |= {"TLS_CERTFILE": str(tls[0]), "TLS_KEYFILE": str(tls[1])}
    scheme = "https" if tls else "http"
    began = time.monotonic()
    # Output to a file, as a container runtime's pipe would take it: logging is part of the cost.
    with (workdir / f"{port}.log").open("wb") as log:
        proc = subprocess.Popen(
            config.argv(port, workers),
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        _all_serving(proc, url, workers, config.name)
    except BaseException:
        stop(proc)
        raise
    return Running(proc, url, time.monotonic() - began)


def _all_serving(proc: subprocess.Popen[bytes], url: str, workers: int, name: str) -> None:
    """Return once `workers` different pids have answered /info."""
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    with httpx.Client(verify=False, timeout=2, headers={"Connection": "close"}) as client:
        while len(pids) < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"{name} did not serve {workers} workers within 60 s")
            try:
                pids.add(client.get(url + INFO).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.01)


@contextlib.contextmanager
def running(
    config: Config,
    workers: int,
    workdir: Path,
    tls: tuple[Path, Path] | None = None,
    cpus: set[int] | None = None,
) -> Iterator[Running]:
    """`start`, then `stop` however the block ends."""
    server = start(config, workers, workdir, tls, cpus)
    try:
        yield server
    finally:
        stop(server.proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    else:
        with contextlib.suppress(ProcessLookupError):  # workers a manager left behind
            os.killpg(proc.pid, signal.SIGKILL)


def pss(root: int) -> int:
    """Proportional set size of a process and all its descendants, in bytes: shared pages are
    divided among the processes that share them, so the sum is what the tree really costs."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
