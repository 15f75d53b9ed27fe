"""One worker under the uvicorn launcher: no manager, the launcher's own process serves, and the
guarantees of "Signals and reloads" that one worker can have, for real signals under load."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.load import Tally, hammer
from tests.scrape import info_count, scrape
from tests.servers import Server, launcher, refused, serve, tree, until, wait_for

RESTARTED = "Started server process"  # what uvicorn's server says each time it starts


def one_process(server: Server) -> None:
    assert tree(server.proc.pid) == [server.proc.pid], "no manager, no worker: one process"
    assert httpx.get(server.url + "/info").json()["pid"] == server.proc.pid


def starts(server: Server) -> int:
    return server.output().count(RESTARTED)


@pytest.mark.timeout(60)
def test_one_worker_is_the_launchers_own_process_and_drains_on_sigterm(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1", GRACEFUL_TIMEOUT="10") as server:
        one_process(server)
        assert "with 1 worker" in server.output()

        async def scenario() -> tuple[list[int], int]:
            async def slow() -> int:
                async with httpx.AsyncClient(timeout=30) as client:
                    return (await client.get(server.url + "/sleep?seconds=3")).status_code

            requests = [asyncio.ensure_future(slow()) for _ in range(16)]
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as probe:
                await until(lambda: _in_flight(server) == 16, 10, "16 requests in flight")
                server.proc.send_signal(signal.SIGTERM)
                ready = (await probe.get(server.url + "/readyz")).status_code
            await asyncio.to_thread(wait_for, lambda: refused(server.port), 2, "refusals")
            assert not any(request.done() for request in requests)
            return list(await asyncio.gather(*requests)), ready

        statuses, ready = asyncio.run(scenario())
        assert statuses == [200] * 16
        assert ready == 503
        assert server.proc.wait(timeout=10) == 0
        assert "Traceback" not in server.output()


def _in_flight(server: Server) -> int:
    return int(httpx.get(server.url + "/info", timeout=5).json()["in_flight"]) - 1


@pytest.mark.timeout(90)
def test_sighup_restarts_it_in_place_under_load_failing_no_request(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1") as server:

        async def reload(tally: Tally, generation: int) -> None:
            await until(lambda: tally.ok > 300 * generation, what="the load under way")
            server.proc.send_signal(signal.SIGHUP)
            await until(lambda: starts(server) == generation, 20, "a new start")

        async def reload_twice(tally: Tally, done: asyncio.Event) -> None:
            await reload(tally, 2)
            await reload(tally, 3)
            await until(lambda: tally.ok > 1200, what="the restarted server under load")
            done.set()

        async def run() -> Tally:
            tally, done = Tally(), asyncio.Event()
            await asyncio.gather(
                hammer(server.url + "/info", seconds=60, stop=done, tally=tally),
                reload_twice(tally, done),
            )
            return tally

        tally = asyncio.run(run())
        assert (tally.failed, dict(tally.failures)) == (0, {})
        assert tally.pids == {server.proc.pid}, "the same process, in place"
        assert server.output().count("Received SIGHUP") == 2
        one_process(server)
        assert "Traceback" not in server.output()


@pytest.mark.timeout(90)
def test_max_requests_restarts_it_in_place_failing_no_request(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1", MAX_REQUESTS="300") as server:
        tally = asyncio.run(hammer(server.url + "/info", seconds=50, limit=1500))
        assert (tally.failed, dict(tally.failures)) == (0, {})
        assert tally.ok >= 1500
        # Restarted at every 300 requests or so (those in flight are served): four times at least.
        wait_for(lambda: starts(server) >= 5, 20, "the restarts")
        one_process(server)
        # A restart starts the counters afresh, as any process's: Prometheus reads a reset.
        assert 0 < info_count(scrape(server.url)) <= 300


@pytest.mark.timeout(90)
def test_a_blocked_event_loop_restarts_it_in_place(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1", WORKER_TIMEOUT="2") as server:

        async def blocked() -> str:
            async with httpx.AsyncClient(timeout=60) as client:
                try:
                    await client.get(server.url + "/block", params={"seconds": 60})
                except httpx.HTTPError as error:
                    return type(error).__name__  # cut by the restart, as it should
            return "answered"

        started = time.monotonic()
        assert asyncio.run(blocked()) == "RemoteProtocolError"
        assert time.monotonic() - started < 20, "not the whole 60 s"
        wait_for(lambda: starts(server) == 2, 20, "a new start")
        assert "gave no sign of life" in server.output()
        one_process(server)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["second SIGINT", "SIGQUIT"])
def test_a_second_ctrl_c_or_sigquit_stops_it_at_once(how: str, tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1", GRACEFUL_TIMEOUT="30") as server:

        async def scenario() -> str:
            async def slow() -> str:
                async with httpx.AsyncClient(timeout=60) as client:
                    try:
                        response = await client.get(server.url + "/sleep", params={"seconds": 30})
                    except httpx.HTTPError as error:
                        return type(error).__name__
                return str(response.status_code)

            request = asyncio.ensure_future(slow())
            await until(lambda: _in_flight(server) == 1, 10, "the request in flight")
            if how == "second SIGINT":
                os.killpg(server.proc.pid, signal.SIGINT)
                await until(lambda: "Waiting for connections" in server.output(), 10, "a drain")
                assert server.proc.poll() is None, "the first Ctrl-C drains"
            started = time.monotonic()
            final = signal.SIGINT if how == "second SIGINT" else signal.SIGQUIT
            os.killpg(server.proc.pid, final)
            assert await asyncio.to_thread(server.proc.wait, 10) == 0
            assert time.monotonic() - started < 5
            return await request

        # Cut, or answered 500 where the server cancels it as it stops.
        assert asyncio.run(scenario()) in ("RemoteProtocolError", "500")


def test_sigttin_cannot_add_a_worker_and_says_so(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1") as server:
        server.proc.send_signal(signal.SIGTTIN)
        wait_for(lambda: "SIGTTIN ignored" in server.output(), 10, "the warning")
        one_process(server)
