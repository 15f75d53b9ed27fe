"""A bounded load generator for tests: keep-alive clients on 127.0.0.1, counting every failure."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    pids: set[int] = field(default_factory=set)
    versions: Counter[str] = field(default_factory=Counter)  # "HTTP/1.1", "HTTP/2"

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


async def _client(
    url: str,
    deadline: float,
    limit: int,
    tally: Tally,
    verify: ssl.SSLContext | bool,
    http2: bool,
    stop: asyncio.Event,
) -> None:
    # One connection per client, reused while the server keeps it open: the keep-alive
    # traffic a load balancer sends, which is what a careless drain resets.
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1), timeout=10, verify=verify, http2=http2
    ) as client:
        while time.monotonic() < deadline and tally.ok + tally.failed < limit and not stop.is_set():
            try:
                response = await client.get(url)
            except httpx.HTTPError as error:
                tally.failures[type(error).__name__] += 1
                continue
            if response.status_code == 200:
                tally.ok += 1
                tally.versions[response.http_version] += 1
                tally.pids.add(response.json()["pid"])
            else:
                tally.failures[f"HTTP {response.status_code}"] += 1


async def hammer(
    url: str,
    seconds: float,
    clients: int = 8,
    limit: int = 200_000,
    verify: ssl.SSLContext | bool = True,
    http2: bool = False,
    stop: asyncio.Event | None = None,
    tally: Tally | None = None,
) -> Tally:
    """Send requests from `clients` keep-alive clients for `seconds` (at most `limit` in all),
    or until `stop` is set. Counted in `tally`, if given, for the caller to watch meanwhile.

    With `http2`, each client offers HTTP/2 through ALPN (HTTPS only) and sends its requests
    one after another on one connection, as over HTTP/1.1.
    """
    tally = Tally() if tally is None else tally
    deadline = time.monotonic() + seconds
    stop = stop or asyncio.Event()
    await asyncio.gather(
        *(_client(url, deadline, limit, tally, verify, http2, stop) for _ in range(clients))
    )
    return tally
