"""The nearest plain command that `--print` shows beside the native one: the stock server's own
CLI, made from the same translation, serves the app pasted into a shell, and stops on SIGTERM."""

from __future__ import annotations

import inspect
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from pkgutil import resolve_name
from typing import Any

import httpx
import pytest
import uvicorn_worker
from uvicorn.config import Config

from devtls.certs import CertPaths, ensure
from launchers import LAUNCHERS, gunicorn, load, uvicorn
from launchers.cli import main
from launchers.command import Plain
from launchers.settings import Settings
from tests.servers import (
    KIT_APP,
    ROOT,
    Server,
    clean_env,
    free_port,
    group_alive,
    refused,
    run_launcher,
    settled_workers,
    stop,
    trusting,
    wait_ready,
)

GRACEFUL = 5
COMMENT = "# nearest plain command ("
TLS = [name for name in LAUNCHERS if "tls_certfile" not in load(name).REFUSED]


def print_output(**settings: str) -> str:
    """What `python -m launchers --print` shows, run in the repository."""
    result = run_launcher(ROOT, "--print", **settings)
    assert result.returncode == 0, result.stderr
    return result.stdout


def printed(**settings: str) -> str:
    """The plain command that `--print` shows, last."""
    output = print_output(**settings)
    *_, comment, line = output.splitlines()
    assert comment.startswith(COMMENT), output
    return line


@contextmanager
def pasted(line: str, port: int, tmp_path: Path, ca: Path | None = None) -> Iterator[Server]:
    """`line` as a shell runs it pasted in the repository, the venv's bin first on PATH, with no
    setting in the environment but those the line sets, nor PYTHONPATH; yields once it serves.
    `exec env` makes the server the shell's own process, the one a signal reaches."""
    env = clean_env()
    del env["PYTHONPATH"]  # the app must be found from the working directory, as pasted
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = tmp_path / f"plain-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec env {line}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"https://localhost:{port}" if ca else f"http://127.0.0.1:{port}"
    server = Server(proc, url, log, trusting(ca) if ca else True)
    try:
        wait_ready(server, "/healthz", timeout=30)
        yield server
    finally:
        stop(proc)


def stops_on_sigterm(server: Server, name: str, workers: int) -> None:
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn alone (fastapi-cli's too) raises the signal again once it has drained, and ends
    # by it; the launcher's own single-process server exits 0, as every manager does.
    alone = name in ("uvicorn", "fastapi-cli") and workers == 1
    assert server.proc.wait(timeout=GRACEFUL + 5) == (-signal.SIGTERM if alone else 0)
    assert not group_alive(server.proc.pid), "a worker outlived its manager"
    assert refused(server.port)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = CertPaths(tmp_path_factory.mktemp("certs"))
    ensure(paths)
    return paths


@pytest.mark.parametrize(
    ("name", "workers"), [*[(name, 1) for name in LAUNCHERS], ("uvicorn", 2)], ids=str
)
def test_the_plain_command_serves_and_stops_on_sigterm(
    name: str, workers: int, tmp_path: Path
) -> None:
    port = free_port()
    settings = {"LAUNCHER": name, "WEB_CONCURRENCY": str(workers), "PORT": str(port)}
    line = printed(APP=KIT_APP, GRACEFUL_TIMEOUT=str(GRACEFUL), **settings)
    with pasted(line, port, tmp_path) as server:
        response = httpx.get(server.url + "/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        # What the line sets reaches the workers, which say how they are served.
        info = httpx.get(server.url + "/info").json()
        assert (info["launcher"], info["workers"], info["tls"]) == (name, workers, False)
        if workers > 1:
            assert len(settled_workers(server.proc.pid, workers)) == workers
        stops_on_sigterm(server, name, workers)


@pytest.mark.parametrize("name", TLS)
def test_the_plain_command_serves_https(name: str, certs: CertPaths, tmp_path: Path) -> None:
    port = free_port()
    tls = {"TLS_CERTFILE": str(certs.server), "TLS_KEYFILE": str(certs.server_key)}
    line = printed(APP=KIT_APP, LAUNCHER=name, WEB_CONCURRENCY="1", PORT=str(port), **tls)
    with pasted(line, port, tmp_path, ca=certs.ca) as server:
        assert httpx.get(server.url + "/healthz", verify=server.verify).status_code == 200
        stops_on_sigterm(server, name, workers=1)


@pytest.mark.parametrize("name", ["gunicorn", "gunicorn-asgi"])
def test_the_printed_gunicorn_conf_runs_as_a_gunicorn_conf_py(name: str, tmp_path: Path) -> None:
    """The native part's configuration, pasted into a gunicorn.conf.py beside the app, serves
    as the launcher does: its hooks are imported by name, not written as bare dotted paths."""
    port = free_port()
    settings = {"LAUNCHER": name, "WEB_CONCURRENCY": "2", "PORT": str(port)}
    output = print_output(APP=KIT_APP, GRACEFUL_TIMEOUT=str(GRACEFUL), **settings)
    command, conf = output.split(f"\n\n{COMMENT}")[0].split("\n\n", 1)
    assert "from launchers.gunicorn.hooks import on_starting\n" in conf
    pasted_conf = tmp_path / "gunicorn.conf.py"
    pasted_conf.write_text(conf)
    env_part = command.split(f" {sys.executable} ")[0]
    with pasted(f"{env_part} gunicorn --config {pasted_conf}", port, tmp_path) as server:
        assert len(settled_workers(server.proc.pid, 2)) == 2
        assert httpx.get(server.url + "/info").json()["launcher"] == name
        stops_on_sigterm(server, name, workers=2)


def test_print_shows_the_plain_command_after_the_native_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert main(["uvicorn", "--print"]) == 0
    native, plain = capsys.readouterr().out.split(f"\n\n{COMMENT}")
    assert native.startswith(f"LAUNCHER=uvicorn WEB_CONCURRENCY=3 {sys.executable} -m ")
    assert native.endswith("\n    limits=Limits(max_header_size=16384, header_timeout=10.0, "
                           "body_timeout=30.0, worker_timeout=30),\n)")  # fmt: skip
    comment, line, end = plain.split("\n")
    assert (line.split()[:3], end) == (["LAUNCHER=uvicorn", "WEB_CONCURRENCY=3", "uvicorn"], "")
    # The sample has migrations, which only the launcher runs first.
    assert comment.endswith("; MIGRATE (run `python -m launchers.migrate` first))")


def test_uvicorn_plain_command() -> None:
    plain = uvicorn.plain(Settings(web_concurrency=3, port=9000, root_path="/api"))
    assert plain.argv == [
        "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "9000", "--workers", "3",
        "--log-level", "info", "--backlog", "2048", "--limit-max-requests-jitter", "0",
        "--http", "httptools", "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", "30",
        "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--root-path", "/api",
        "--limit-concurrency", "1000", "--no-server-header", "--no-access-log",
    ]  # fmt: skip
    assert plain.loses[:3] == [
        "drain without connection resets",
        "MAX_HEADER_SIZE, HEADER_TIMEOUT and BODY_TIMEOUT",
        "the RFC 9112 framing checks",
    ]
    assert "--http zttp --http2" in " ".join(uvicorn.plain(Settings(http2=True)).argv)


def test_gunicorn_plain_command() -> None:
    plain = gunicorn.plain(Settings(web_concurrency=3, port=9000, proxy_headers=False))
    assert plain.argv == [
        "gunicorn", "--worker-class", "uvicorn_worker.UvicornWorker", "--bind", "127.0.0.1:9000",
        "--workers", "3", "--log-level", "info", "--backlog", "2048", "--timeout", "30",
        "--max-requests", "0", "--max-requests-jitter", "0", "--error-logfile", "-",
        "--keep-alive", "5", "--graceful-timeout", "30", "--forwarded-allow-ips", "",
        "--no-control-socket", "app.main:app",
    ]  # fmt: skip
    assert "MAX_CONNECTIONS, which the stock worker does not pass to uvicorn" in plain.loses


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_plain_flags_follow_the_settings(name: str) -> None:
    argv = " ".join(load(name).plain(Settings(web_concurrency=3, port=9000)).argv)
    assert "--workers 3" in argv
    assert re.search(r"--port 9000|--bind 127\.0\.0\.1:9000", argv)
    argv = " ".join(load(name).plain(Settings(web_concurrency=2, host="::1")).argv)
    assert "--workers 2" in argv
    assert re.search(r"--host ::1|--bind \[::1\]:8000", argv)


def varied(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A value unlike the base's for each server setting, and its partner where it needs one."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    return {
        "host": {"host": "0.0.0.0"},
        "port": {"port": 9000},
        "web_concurrency": {"web_concurrency": 3},
        "reload": {"reload": True},
        "log_level": {"log_level": "debug"},
        "log_format": {"log_format": "console"},
        "keep_alive_timeout": {"keep_alive_timeout": 7},
        "graceful_timeout": {"graceful_timeout": 12},
        "worker_timeout": {"worker_timeout": 9},
        "preload": {"preload": True},
        "max_requests": {"max_requests": 500},
        "max_requests_jitter": {"max_requests": 500, "max_requests_jitter": 50},
        "max_connections": {"max_connections": 64},
        "backlog": {"backlog": 4096},
        "max_header_size": {"max_header_size": 8192},
        "header_timeout": {"header_timeout": 2.5},
        "body_timeout": {"body_timeout": 4},
        "server_header": {"server_header": True},
        "proxy_headers": {"proxy_headers": False},
        "forwarded_allow_ips": {"forwarded_allow_ips": "10.0.0.1"},
        "root_path": {"root_path": "/api"},
        "tls_certfile": {"tls_certfile": str(cert), "tls_keyfile": str(key)},
        "tls_keyfile": {"tls_certfile": str(cert), "tls_keyfile": str(key)},
        "http2": {"http2": True},
    }


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_every_mapped_setting_reaches_the_plain_command_or_what_it_loses(
    name: str, tmp_path: Path
) -> None:
    """A setting the launcher passes either changes the plain command, or is named in the
    line of what it loses: no setting falls silently between the two."""
    launcher = load(name)
    base = Settings(web_concurrency=2, log_format="json", max_requests=100)
    before = launcher.plain(base)
    for field, update in varied(tmp_path).items():
        if field not in launcher.OPTIONS:
            continue
        after = launcher.plain(base.model_copy(update=update))
        named = re.search(rf"\b{field.upper()}\b", "; ".join(before.loses + after.loses))
        assert after.argv != before.argv or named, field


def plains(tmp_path: Path) -> Iterator[Plain]:
    for update in [{}, *varied(tmp_path).values()]:
        settings = Settings(web_concurrency=2).model_copy(update=update)
        for name in LAUNCHERS:
            if "tls_certfile" in update and name not in TLS:
                continue
            yield load(name).plain(settings)


def test_every_option_without_a_flag_is_described(tmp_path: Path) -> None:
    for plain in plains(tmp_path):
        assert plain.loses or plain.little, plain.argv
        assert not [lost for lost in plain.loses if lost.endswith("which has no flag")], plain


def test_the_stock_parts_are_those_ours_refine() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    for ours, stock in uvicorn.PROTOCOLS.values():
        config = Config(app, log_config=None, **stock)
        config.load()
        assert issubclass(resolve_name(ours), config.http_protocol_class), stock
    worker = resolve_name(gunicorn.WORKER)
    assert issubclass(worker, resolve_name(gunicorn.STOCK_WORKER))
    # What the stock worker reads of gunicorn's settings: not these, which ours passes itself.
    source = inspect.getsource(uvicorn_worker.UvicornWorker.__init__)
    assert "self.cfg.keepalive" in source
    assert not [name for name in gunicorn.UNREAD if name in source]
