"""`gunicorn-asgi`: gunicorn's own ASGI worker, through the gunicorn launcher's translation.

Real gunicorn masters on free ports serve the kit's test app; what the worker cannot do is
measured too, so that IGNORED stays true when gunicorn changes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtls.certs import CertPaths, ensure
from launchers import gunicorn
from launchers.gunicorn import asgi
from launchers.settings import Settings
from tests.scrape import FRESH, info_count, scrape
from tests.servers import (
    Server,
    clean_env,
    launcher,
    refused,
    serve,
    settled_workers,
    start,
    stop,
    wait_for,
    workers,
)

APP = "tests.kitapp:app"
OWN = {"worker_class", "worker_connections", "ssl_version", "http_protocols", "http2_cleartext"}
HOOKS = {"post_fork": asgi.post_fork, "post_worker_init": asgi.post_worker_init}


def test_the_gunicorn_translation_with_gunicorns_worker(tmp_path: Path) -> None:
    plain = Settings(app=APP, web_concurrency=3, keep_alive_timeout=7, max_requests=100)
    shared = {k: v for k, v in gunicorn.config(plain).items() if k not in OWN}
    assert asgi.config(plain) == shared | HOOKS | {
        "worker_class": "asgi",
        "http_protocols": "h1",
        "http2_cleartext": "off",
    }
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.touch()
    key.touch()
    tls = asgi.config(Settings(tls_certfile=str(cert), tls_keyfile=str(key), http2=True))
    assert (tls["certfile"], tls["http_protocols"], tls["http2_cleartext"]) == (
        str(cert),
        "h2,h1",
        "off",
    )
    assert not {"ssl_version", "worker_connections"} & set(tls), "read by uvicorn-worker only"
    assert asgi.config(Settings(http2=True))["http2_cleartext"] == "both"


def test_print_shows_the_native_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [*launcher("gunicorn-asgi"), "--print"],
        cwd=tmp_path,
        env=clean_env(APP=APP, WEB_CONCURRENCY="2", MAX_REQUESTS="500"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"LAUNCHER=gunicorn-asgi WEB_CONCURRENCY=2 {sys.executable} -m gunicorn "
        "--config python:launchers.gunicorn.conf\n"
    )
    for line in ("worker_class = 'asgi'", "workers = 2", "max_requests = 500", "timeout = 30"):
        assert f"\n{line}\n" in result.stdout
    assert "\nfrom launchers.gunicorn.asgi import post_worker_init\n" in result.stdout
    assert "gunicorn-asgi has no option for MAX_CONNECTIONS (it uses None;" in result.stderr
    assert "X-Forwarded-For is not read" in result.stderr


def _scraped_by(server: Server) -> set[int]:
    """Pids of the workers whose access log has a line for `/metrics` (JSON logs)."""
    found = [json.loads(line) for line in server.output().splitlines() if line]
    return {line["pid"] for line in found if line.get("path") == "/metrics"}


def test_two_workers_serve_and_their_metrics_add_up(tmp_path: Path) -> None:
    with serve(
        launcher("gunicorn-asgi"), tmp_path, APP=APP, WEB_CONCURRENCY="2", LOG_FORMAT="json"
    ) as server:
        both = settled_workers(server.proc.pid, 2)
        response = httpx.get(server.url + "/info")
        info = response.json()
        assert (info["launcher"], info["workers"], info["ppid"]) == (
            "gunicorn-asgi",
            2,
            server.proc.pid,
        )
        assert response.headers["server"] == "gunicorn/asgi", "gunicorn's worker, not uvicorn's"
        served = {httpx.get(server.url + "/info", headers=FRESH).json()["pid"] for _ in range(99)}
        assert served == both
        # Every scrape counts all 100, whichever worker answers it; until both have answered one
        # (the access line follows the response: the log may lag one scrape behind).
        for _ in range(60):
            assert info_count(scrape(server.url)) == 100
            if _scraped_by(server) == both:
                break
        wait_for(lambda: _scraped_by(server) == both, 2, "scrapes answered by both workers")


def _in_flight(url: str, workers: int) -> int:
    """Requests in progress over all workers, as each reports it in `/info` (less the ask)."""
    seen: dict[int, int] = {}
    for _ in range(50):
        info = httpx.get(url + "/info", headers=FRESH).json()
        seen[info["pid"]] = info["in_flight"] - 1
        if len(seen) == workers:
            break
    return sum(seen.values())


def test_sigterm_answers_in_flight_requests_and_readyz_turns_503(tmp_path: Path) -> None:
    graceful = 10
    with serve(
        launcher("gunicorn-asgi"), tmp_path, APP=APP, WEB_CONCURRENCY="2",
        GRACEFUL_TIMEOUT=str(graceful), KEEP_ALIVE_TIMEOUT="10",
    ) as server:  # fmt: skip
        port = int(server.url.rsplit(":", 1)[1])

        async def sleep() -> int:
            async with httpx.AsyncClient(timeout=30) as client:
                return (await client.get(server.url + "/sleep", params={"seconds": 3})).status_code

        async def scenario() -> list[int]:
            slow = asyncio.gather(*(sleep() for _ in range(8)))
            # A keep-alive client, as a load balancer's health checker holds one.
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as probe:
                assert (await probe.get(server.url + "/readyz")).status_code == 200
                while await asyncio.to_thread(_in_flight, server.url, 2) < 8:
                    pass
                server.proc.send_signal(signal.SIGTERM)
                # Asked once no worker accepts: a request sent as one begins to stop can find
                # its kept-alive connection closed under it (docs/launchers.md).
                await asyncio.to_thread(wait_for, lambda: refused(port), 5, "refused")
                response = await probe.get(server.url + "/readyz")
                assert (response.status_code, response.headers["connection"]) == (503, "close")
            assert not slow.done()
            return list(await slow)

        started = time.monotonic()
        assert asyncio.run(scenario()) == [200] * 8
        assert server.proc.wait(timeout=graceful) == 0
        assert time.monotonic() - started < graceful


SLOW_IMPORT = """
import os, pathlib, time
pathlib.Path("importing").write_text(str(os.getpid()))
while not pathlib.Path("signalled").exists():  # still importing when the SIGTERM comes
    time.sleep(0.01)
from tests.kitapp import app
"""


def test_a_stop_while_a_worker_imports_the_app_is_not_lost(tmp_path: Path) -> None:
    """uvloop reads signals only while its loop runs: without `post_fork`'s mask, this SIGTERM
    is dropped and the master kills the worker at GRACEFUL_TIMEOUT."""
    (tmp_path / "slowapp.py").write_text(SLOW_IMPORT)
    marker = tmp_path / "importing"
    proc = start(
        launcher("gunicorn-asgi"), tmp_path, APP="slowapp:app", WEB_CONCURRENCY="1",
        GRACEFUL_TIMEOUT="20",
    ).proc  # fmt: skip
    try:
        wait_for(lambda: marker.exists() and marker.read_text() != "", 20, "an import begun")
        assert int(marker.read_text()) in workers(proc.pid), "the worker imports it"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        (tmp_path / "signalled").touch()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = CertPaths(tmp_path_factory.mktemp("certs"))
    ensure(paths)
    return paths


def test_https_and_http2_through_alpn(certs: CertPaths, tmp_path: Path) -> None:
    with serve(
        launcher("gunicorn-asgi"), tmp_path, ca=certs.ca, APP=APP, WEB_CONCURRENCY="1",
        HTTP2="true", TLS_CERTFILE=str(certs.server), TLS_KEYFILE=str(certs.server_key),
    ) as server:  # fmt: skip
        assert httpx.get(server.url + "/info", verify=server.verify).json()["tls"] is True
        with httpx.Client(http2=True, verify=server.verify) as client:
            assert client.get(server.url + "/info").http_version == "HTTP/2"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/info")  # only the development CA vouches for it


def test_what_it_ignores_is_what_gunicorns_worker_does(tmp_path: Path) -> None:
    """IGNORED and notes(), measured: if gunicorn learns one of these, map it."""
    with serve(
        launcher("gunicorn-asgi"), tmp_path, APP=APP, WEB_CONCURRENCY="1", MAX_CONNECTIONS="2",
        HEADER_TIMEOUT="1",
    ) as server:  # fmt: skip
        forwarded = {"X-Forwarded-For": "203.0.113.7"}  # from 127.0.0.1, a trusted proxy
        response = httpx.get(server.url + "/info", headers=forwarded)
        assert response.json()["client"] == "127.0.0.1"
        assert response.headers["server"] == "gunicorn/asgi"
        filler = {f"x-filler-{i}": "a" * 4000 for i in range(50)}  # 200 kB, past MAX_HEADER_SIZE
        assert httpx.get(server.url + "/healthz", headers=filler).status_code == 200

        async def beyond_max_connections() -> list[int]:
            async with httpx.AsyncClient(timeout=10) as client:
                sleeps = [
                    client.get(server.url + "/sleep", params={"seconds": 1}) for _ in range(4)
                ]
                return [r.status_code for r in await asyncio.gather(*sleeps)]

        assert asyncio.run(beyond_max_connections()) == [200] * 4, "no 503"
        # No deadline for a first request's headers: HEADER_TIMEOUT would have cut this one.
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
