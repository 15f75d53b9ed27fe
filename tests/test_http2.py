"""`HTTP2=true` (uvicorn's zttp protocol) reloads without failing a request, as httptools does.

Real servers over real TLS, real SIGHUPs to the manager (uvicorn) or master (gunicorn), and
keep-alive load from HTTP/1.1 and from HTTP/2 clients while every worker is replaced twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import httpx
import pytest

from devtls.certs import CertPaths, ensure
from tests.load import Tally, hammer
from tests.servers import Server, launcher, replaced, serve, settled_workers, until

MANAGERS = ["uvicorn", "gunicorn"]
VERSIONS = {"HTTP/1.1": False, "HTTP/2": True}  # what the load's clients speak: http2=


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """The development CA and a server certificate for localhost, as `make certs` makes them."""
    paths = CertPaths(tmp_path_factory.mktemp("certs"))
    ensure(paths)
    return paths


async def _serving(server: Server, pids: set[int], timeout: float = 20) -> None:
    """Until each of `pids` has answered `/info` on a fresh connection."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while not pids <= seen:
        assert time.monotonic() < deadline, f"workers {pids - seen} never served"
        async with httpx.AsyncClient(verify=server.verify, timeout=5) as client:
            with contextlib.suppress(httpx.HTTPError):
                seen.add((await client.get(server.url + "/info")).json()["pid"])


async def _reload_twice(
    server: Server, first: set[int], load: Tally, done: asyncio.Event
) -> list[set[int]]:
    """SIGHUP, then wait until new workers replaced every old one and serve, twice; the
    generations of workers, in order. (gunicorn stops the old workers as soon as it has forked
    the new ones: a second SIGHUP any sooner would stop workers that never served.)"""
    generations = [first]
    await until(lambda: load.ok > 50, what="the load under way")
    for _ in range(2):
        server.proc.send_signal(signal.SIGHUP)
        current = await asyncio.to_thread(replaced, server.proc.pid, generations[-1])
        await _serving(server, current)
        generations.append(current)

        def loaded(served: int = load.ok, fresh: set[int] = current) -> bool:
            return bool(fresh & load.pids) and load.ok > served + 100  # the new workers, loaded

        await until(loaded, what="the new workers under load")
    done.set()
    return generations


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MANAGERS)
def test_reloads_under_load_fail_no_request(
    name: str, version: str, tls: CertPaths, tmp_path: Path
) -> None:
    with serve(
        launcher(name),
        tmp_path,
        ca=tls.ca,
        WEB_CONCURRENCY="2",
        HTTP2="true",
        TLS_CERTFILE=str(tls.server),
        TLS_KEYFILE=str(tls.server_key),
    ) as server:
        first = settled_workers(server.proc.pid, 2)

        async def run() -> tuple[int, dict[str, int], dict[str, int], set[int], list[set[int]]]:
            done, tally = asyncio.Event(), Tally()
            load = hammer(
                server.url + "/info",
                seconds=45,
                verify=server.verify,
                http2=VERSIONS[version],
                stop=done,
                tally=tally,
            )
            _, generations = await asyncio.gather(load, _reload_twice(server, first, tally, done))
            return tally.ok, dict(tally.failures), dict(tally.versions), tally.pids, generations

        ok, failures, versions, pids, generations = asyncio.run(run())
        assert failures == {}
        assert set(versions) == {version}
        assert len(generations) == 3, "every worker replaced, twice"
        # Served by the first workers and the last: the load ran before and after the reloads.
        assert pids & generations[0], (pids, generations)
        assert pids & generations[-1], (pids, generations)
        assert ok > 250, "the load really ran"
        assert "Traceback" not in server.output()
