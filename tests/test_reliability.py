"""Reloads, drains, crashes and stuck workers, for real: both process managers, real signals."""

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
from tests.servers import (
    Server,
    group_alive,
    launcher,
    refused,
    replaced,
    running,
    serve,
    serving_pids,
    settled_workers,
    until,
    wait_for,
    workers,
)

# Drains, reloads and recycling under load fail no request on these; gunicorn's own ASGI worker
# fails a few in some runs (docs/launchers.md: gunicorn-asgi), so it is left out of those.
STEADY = ["uvicorn", "gunicorn"]
MANAGERS = [*STEADY, "gunicorn-asgi"]
# granian too, where it behaves as they do (docs/launchers.md: what it lacks).
SERVERS = [*MANAGERS, "granian"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", STEADY)
def test_rolling_reload_under_load_fails_no_request(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        manager = server.proc.pid
        first = settled_workers(manager, 2)

        async def reload_twice(tally: Tally, done: asyncio.Event) -> None:
            await until(lambda: tally.ok > 300, what="the load under way")
            generations = [first]
            for _ in range(2):
                server.proc.send_signal(signal.SIGHUP)
                generations.append(await asyncio.to_thread(replaced, manager, generations[-1]))

                def loaded(served: int = tally.ok) -> bool:  # the new workers, and 300 more
                    return bool(generations[-1] & tally.pids) and tally.ok > served + 300

                await until(loaded, what="the new workers under load")
            done.set()

        async def run() -> tuple[int, int, dict[str, int]]:
            tally, done = Tally(), asyncio.Event()
            load = hammer(server.url + "/info", seconds=60, stop=done, tally=tally)
            await asyncio.gather(load, reload_twice(tally, done))
            return tally.ok, tally.failed, dict(tally.failures)

        ok, failed, failures = asyncio.run(run())
        assert (failed, failures) == (0, {})
        assert ok > 900, "the load really ran"
        assert not settled_workers(manager, 2) & first, "every worker was replaced"
        assert info_count(scrape(server.url)) >= ok, "the old workers' counts outlive them"
        assert "Traceback" not in server.output()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("name", "preload"), [("uvicorn", "false"), ("gunicorn", "false"), ("gunicorn", "true")]
)
def test_max_requests_recycles_workers_under_load_fails_no_request(
    name: str, preload: str, tmp_path: Path
) -> None:
    with serve(
        launcher(name),
        tmp_path,
        WEB_CONCURRENCY="2",
        MAX_REQUESTS="300",
        MAX_REQUESTS_JITTER="50",
        PRELOAD=preload,
    ) as server:
        manager = server.proc.pid
        first = settled_workers(manager, 2)
        # Bounded by count; the time bound only catches a server that stopped answering.
        tally = asyncio.run(hammer(server.url + "/info", seconds=45, limit=1500))
        assert (tally.failed, dict(tally.failures)) == (0, {})
        assert tally.ok >= 1500, "the load ran to its end"
        assert len(tally.pids) > 3, f"workers were recycled: {tally.pids}"
        assert not settled_workers(manager, 2) & first, "the worker count is restored"
        # Every answered request is still counted: the shared metrics outlived their workers.
        counted = info_count(scrape(server.url))
        assert counted >= tally.ok
        assert "Traceback" not in server.output()


async def _slow_requests(url: str, count: int, seconds: float) -> list[int]:
    async def one() -> int:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(url + "/sleep", params={"seconds": seconds})
            return response.status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


def in_flight(url: str, workers_count: int) -> int:
    """Requests in flight over all workers, as each reports it in `/info` (less the ask)."""
    seen: dict[int, int] = {}
    for _ in range(50):
        info = httpx.get(url + "/info", timeout=5).json()
        seen[info["pid"]] = info["in_flight"] - 1
        if len(seen) == workers_count:
            break
    return sum(seen.values())


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", STEADY)
def test_sigterm_drains_in_flight_requests_then_exits_0(name: str, tmp_path: Path) -> None:
    graceful = 10
    with serve(
        launcher(name), tmp_path, WEB_CONCURRENCY="2", GRACEFUL_TIMEOUT=str(graceful)
    ) as server:

        async def scenario() -> tuple[list[int], list[int]]:
            slow = asyncio.ensure_future(_slow_requests(server.url, 16, seconds=3))
            # A keep-alive client, as a load balancer's health checker holds one.
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as probe:
                assert (await probe.get(server.url + "/readyz")).status_code == 200
                deadline = time.monotonic() + 10
                while await asyncio.to_thread(in_flight, server.url, 2) < 16:
                    assert time.monotonic() < deadline, "16 requests never got in flight"
                started = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                # Readiness turns 503 on the open connection, which the server then closes
                # with `Connection: close` on a response, not under a request.
                statuses: list[int] = []
                closing = False
                while not closing:
                    response = await probe.get(server.url + "/readyz")
                    statuses.append(response.status_code)
                    closing = response.headers.get("connection") == "close"
                assert time.monotonic() - started < 3
            # New connections are refused (once every worker has begun to drain), while the
            # slow requests are still in flight.
            await asyncio.to_thread(wait_for, lambda: refused(server.port), 2, "refusals")
            assert not slow.done()
            return await slow, statuses

        started = time.monotonic()
        slow, statuses = asyncio.run(scenario())
        assert slow == [200] * 16
        assert statuses[-1] == 503
        assert set(statuses[statuses.index(503) :]) == {503}, "never ready again once draining"
        assert server.proc.wait(timeout=graceful) == 0
        assert time.monotonic() - started < graceful + 5
        assert not group_alive(server.proc.pid)


@pytest.mark.parametrize("name", SERVERS)
def test_killed_worker_is_replaced(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        manager = server.proc.pid
        before = settled_workers(manager, 2)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in workers(manager), timeout=10, what="the victim gone")
        (new,) = settled_workers(manager, 2, timeout=10) - before
        wait_for(lambda: new in serving_pids(server.url), timeout=10, what="the new worker serving")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", MANAGERS)
def test_worker_with_a_blocked_event_loop_is_replaced(name: str, tmp_path: Path) -> None:
    # Two workers: with one, the uvicorn launcher has no manager (tests/test_one_worker.py).
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", WORKER_TIMEOUT="2") as server:
        manager = server.proc.pid
        before = settled_workers(manager, 2)

        async def block() -> BaseException | None:
            async with httpx.AsyncClient(timeout=60) as client:
                try:
                    await client.get(server.url + "/block", params={"seconds": 60})
                except httpx.HTTPError as error:
                    return error  # the worker died under it, as it should
            return None

        async def scenario() -> BaseException | None:
            blocked = asyncio.ensure_future(block())
            await until(lambda: not before <= workers(manager), 20, "the stuck worker killed")
            return await blocked

        assert isinstance(asyncio.run(scenario()), httpx.RemoteProtocolError)
        (stuck,) = before - workers(manager)
        after = settled_workers(manager, 2)
        (new,) = after - before
        assert stuck not in after
        wait_for(lambda: new in serving_pids(server.url), what="the replacement serving")


DRAINING = "Waiting for connections to close"  # what uvicorn's server says as it drains


def _hold_slow_request(server: Server) -> asyncio.Future[int | str]:
    async def slow() -> int | str:
        async with httpx.AsyncClient(timeout=60) as client:
            try:
                response = await client.get(server.url + "/sleep", params={"seconds": 30})
            except httpx.HTTPError as error:
                return type(error).__name__
            return response.status_code

    return asyncio.ensure_future(slow())


async def _until_in_flight(server: Server, workers_count: int) -> None:
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(in_flight, server.url, workers_count) < 1:
        assert time.monotonic() < deadline


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MANAGERS)
def test_second_ctrl_c_stops_at_once(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", GRACEFUL_TIMEOUT="30") as server:

        async def scenario() -> int | str:
            slow = _hold_slow_request(server)
            await _until_in_flight(server, 2)
            os.killpg(server.proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
            # gunicorn's own worker logs nothing as it drains: its master's line must do.
            marker = "Handling signal: int" if name == "gunicorn-asgi" else DRAINING
            await until(lambda: marker in server.output(), 10, "the worker draining")
            assert server.proc.poll() is None, "the first Ctrl-C drains: it does not stop"
            assert not slow.done(), "the request held is still served"
            started = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGINT)
            await asyncio.to_thread(server.proc.wait, 10)
            assert time.monotonic() - started < 5
            return await slow

        # Cut, or answered 500 where the worker cancels it before its manager kills it.
        assert asyncio.run(scenario()) in ("RemoteProtocolError", 500)
        assert not group_alive(server.proc.pid)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MANAGERS)
def test_sigquit_stops_at_once(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", GRACEFUL_TIMEOUT="30") as server:

        async def scenario() -> None:
            slow = _hold_slow_request(server)
            await _until_in_flight(server, 2)
            started = time.monotonic()
            server.proc.send_signal(signal.SIGQUIT)
            await asyncio.to_thread(server.proc.wait, 10)
            assert time.monotonic() - started < 5
            await slow

        asyncio.run(scenario())
        assert not group_alive(server.proc.pid)


@pytest.mark.parametrize("name", MANAGERS)
def test_workers_stop_when_their_manager_is_killed(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        manager = server.proc.pid
        orphans = settled_workers(manager, 2)
        os.kill(manager, signal.SIGKILL)
        server.proc.wait(timeout=5)
        wait_for(lambda: not orphans & running(), timeout=15, what="the orphaned workers to stop")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MANAGERS)
def test_scaled_count_survives_a_reload(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        manager = server.proc.pid
        settled_workers(manager, 2)
        server.proc.send_signal(signal.SIGTTIN)
        three = settled_workers(manager, 3)
        server.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: len(workers(manager)) == 3 and not workers(manager) & three,
            what="three new workers",
        )
        server.proc.send_signal(signal.SIGTTOU)
        wait_for(lambda: len(workers(manager)) == 2, what="two workers again")
