"""uvicorn's own test suite, run against the uvicorn internals we override.

`launchers.uvicorn.protocol.HttpToolsProtocol`, the zttp protocols of `launchers.uvicorn.zttp`
and `launchers.uvicorn.supervisor.Supervisor` subclass private uvicorn classes and use their
attributes. Here the installed uvicorn's tests, from its sdist, run with ours in their place
(`tests/uvicorn_suite.py`): exactly the tests `uvicorn_contract.txt` lists must fail, so a uvicorn
upgrade names the tests it broke, and the list cannot go stale.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypedDict

import httpx
import pytest
import uvloop
from uvicorn.server import ServerState

from launchers.uvicorn.limits import Config
from launchers.uvicorn.protocol import HttpToolsProtocol
from tests.servers import ROOT, clean_env, stop, until

HERE = Path(__file__).resolve().parent
CONTRACT = HERE / "uvicorn_contract.txt"

# The files whose tests run our protocols (directly, or through `Config(http="auto")` and
# `Config(http="zttp", http2=True)`) or our supervisor; the rest tests nothing we override.
FILES = [
    "tests/protocols/test_http.py",
    "tests/protocols/test_http2.py",
    "tests/protocols/test_websocket.py",
    "tests/middleware/test_proxy_headers.py",
    "tests/middleware/test_logging.py",
    "tests/test_server.py",
    "tests/test_default_headers.py",
    "tests/test_ssl.py",
    "tests/test_main.py",
    "tests/test_auto_detection.py",
    "tests/supervisors/test_multiprocess.py",
]
DOWNLOAD_TIMEOUT = 60
SUITE_TIMEOUT = 180  # the whole run; one hung test is stopped by the per-test timeout first
TEST_TIMEOUT = 30
OURS = {  # what `uvicorn_suite` must have put in place of each of uvicorn's classes
    "httptools": "launchers.uvicorn.protocol.HttpToolsProtocol",
    "auto": "launchers.uvicorn.protocol.HttpToolsProtocol",
    "zttp": "launchers.uvicorn.zttp.ZttpProtocol",
    "zttp_h2": "launchers.uvicorn.zttp.ZttpH2Protocol",
    "auto_zttp": "launchers.uvicorn.zttp.AutoZttpProtocol",
}


def cache_dir() -> Path:
    """In the virtual environment, so `make clean` removes it; else the user's cache."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "uvicorn-sdist"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uvicorn-sdist"


def _unavailable(why: str) -> NoReturn:
    # Offline, a developer's run skips; CI, which reaches PyPI, must not pass without the check.
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def locked_sdist(version: str) -> dict[str, str]:
    """uv.lock's entry for uvicorn `version`'s sdist: its URL and hash."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for package in lock["package"]:
        if package["name"] == "uvicorn" and package["version"] == version:
            return dict(package["sdist"])
    raise AssertionError(f"uv.lock has no uvicorn {version}: run `make upgrade`")


def sdist(version: str) -> Path:
    """The sdist of uvicorn `version` that uv.lock names, checked against the lock's hash and
    downloaded once per machine; skips if it cannot be."""
    archive = cache_dir() / f"uvicorn-{version}.tar.gz"
    if archive.exists():
        return archive
    locked = locked_sdist(version)
    try:
        body = httpx.get(locked["url"], timeout=DOWNLOAD_TIMEOUT, follow_redirects=True)
        body.raise_for_status()
    except httpx.HTTPError as error:
        _unavailable(f"uvicorn {version}'s sdist could not be downloaded: {error}")
    algorithm, _, digest = locked["hash"].partition(":")
    assert hashlib.new(algorithm, body.content).hexdigest() == digest, "not the locked file"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=archive.parent, delete=False) as partial:
        partial.write(body.content)
    os.replace(partial.name, archive)  # whole, even with two runs at once
    return archive


def unpack(archive: Path, destination: Path) -> Path:
    """Its tests and pyproject.toml only: its `uvicorn/` would shadow the installed one."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, name = member.name.partition("/")
            if member.isfile() and (name == "pyproject.toml" or name.startswith("tests/")):
                if ".." in Path(name).parts:
                    continue
                source = tar.extractfile(member)
                assert source is not None
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                (destination / name).write_bytes(source.read())
    return destination


def pytest_options(pyproject: Path) -> list[str]:
    """uvicorn's own pytest configuration, but serial: `-n 8` (pytest-xdist) would take every
    core of a shared machine, and the tests do not need it."""
    config = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]
    addopts, kept = shlex.split(config.get("addopts", "")), []
    while addopts:
        option = addopts.pop(0)
        if option in ("-n", "--numprocesses", "--dist"):
            addopts.pop(0)
        elif not option.startswith(("-n", "--numprocesses=", "--dist=")):
            kept.append(option)
    return ["-c", str(pyproject), "-o", f"addopts={shlex.join(kept)}"]


def expected_failures() -> dict[str, str]:
    """Node id -> reason, from `uvicorn_contract.txt`."""
    reasons: dict[str, str] = {}
    reason = ""
    for line in CONTRACT.read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            reason = line[1:-1]
        elif line and not line.startswith("#"):
            assert reason, f"{CONTRACT.name}: {line} has no [reason] above it"
            assert line not in reasons, f"{CONTRACT.name}: {line} is listed twice"
            reasons[line] = reason
    return reasons


class Found(TypedDict):
    """What `uvicorn_suite` writes: the classes it put in place, and each test's outcome."""

    swapped: dict[str, str | list[str]]
    results: dict[str, dict[str, str]]  # node id -> {"outcome": ..., "message": ...}


def run_suite(copy: Path, log: Path) -> tuple[int, Found]:
    results = copy / "results.json"
    metrics = copy / "metrics"  # our supervisor drops a dead worker's metrics from here
    metrics.mkdir()
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}
    env |= {"UVICORN_CONTRACT_RESULTS": str(results), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    argv = [sys.executable, "-m", "pytest", *pytest_options(copy / "pyproject.toml")]
    argv += ["-p", "no:cacheprovider", "-o", f"timeout={TEST_TIMEOUT}", *FILES]
    with log.open("wb") as out:
        # Its own session: the supervisor tests' workers are stopped with it, whatever happens.
        proc = subprocess.Popen(
            argv, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        proc.wait(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"uvicorn's suite ran over {SUITE_TIMEOUT} s:\n{_tail(log)}")
    finally:
        stop(proc)
    if not results.exists():
        pytest.fail(f"uvicorn's suite left no results (exit {proc.returncode}):\n{_tail(log)}")
    found: Found = json.loads(results.read_text())
    return proc.returncode, found


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def test_the_contract_lists_each_test_once_under_a_reason() -> None:
    assert expected_failures()


@pytest.mark.timeout(DOWNLOAD_TIMEOUT + SUITE_TIMEOUT + 30)
def test_uvicorn_suite_fails_only_where_we_differ_on_purpose(tmp_path: Path) -> None:
    version = importlib.metadata.version("uvicorn")
    copy = unpack(sdist(version), tmp_path / f"uvicorn-{version}")
    shutil.copyfile(HERE / "uvicorn_suite.py", copy / "conftest.py")
    code, found = run_suite(copy, tmp_path / "suite.log")

    swapped, results = found["swapped"], found["results"]
    failed = {test: r["message"] for test, r in results.items() if r["outcome"] == "failed"}
    expected = expected_failures()

    problems = [
        f"uvicorn's tests ran {swapped.get(name)} as {name!r}, not {ours}"
        for name, ours in OURS.items()
        if swapped.get(name) != ours
    ]
    if not swapped["supervised"]:
        problems.append("no test ran our Supervisor")
    if broken := sorted(set(failed) - set(expected)):
        problems.append(f"{len(broken)} of uvicorn {version}'s tests fail against our classes:")
        problems += [f"  {test}: {failed[test]}" for test in broken]
    if fixed := sorted(t for t in expected if t in results and t not in failed):
        problems.append(f"{len(fixed)} listed in {CONTRACT.name} no longer fail: take them off")
        problems += [f"  {t}: {results[t]['outcome']}" for t in fixed]
    if gone := sorted(t for t in expected if t not in results):
        problems.append(f"{len(gone)} listed in {CONTRACT.name} did not run (renamed, removed?)")
        problems += [f"  {test}" for test in gone]
    if not problems and code not in (0, 1):
        problems.append(f"uvicorn's suite exited with {code}:\n{_tail(tmp_path / 'suite.log')}")
    assert not problems, "\n".join(problems)


async def _asgi_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("no request is ever sent")


async def _reset_connections(count: int) -> list[weakref.ref[HttpToolsProtocol]]:
    """Serve our protocol on a real socket, open `count` connections and reset each (SO_LINGER
    0, then close: an RST, so `connection_lost` gets an error); weak references to them."""
    config = Config(_asgi_app, timeout_keep_alive=60, log_config=None)
    state = ServerState()
    made: list[weakref.ref[HttpToolsProtocol]] = []

    def factory() -> HttpToolsProtocol:
        protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
        made.append(weakref.ref(protocol))
        return protocol

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        await until(lambda: len(state.connections) == count, what="connections accepted")
        for client in clients:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        await until(lambda: not state.connections, what="connections lost")
    finally:
        server.close()
        await server.wait_closed()
    return made


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_reset_connection_lets_go_of_its_protocol(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Our keep-alive timer is armed at connect; uvicorn's `connection_lost` cancels it only on
    a clean close, and an armed timer holds its protocol until it fires (60 s here)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        made = runner.run(_reset_connections(20))
        gc.collect()
        kept = [ref for ref in made if ref() is not None]
        assert len(made) == 20
        assert not kept, f"{len(kept)} of 20 reset connections' protocols are still referenced"
