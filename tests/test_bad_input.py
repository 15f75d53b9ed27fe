"""Hostile and broken requests over raw sockets: exact answers, and the server keeps serving."""

from __future__ import annotations

import json
import resource
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from tests.servers import Server, launcher, serve, wait_for

BLOCKING = "blocking the event loop"  # what the test app logs as `/block` begins


@dataclass
class Target:
    name: str
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def protected(self) -> bool:
        """Whether our protocol guards this launcher (fastapi-cli runs uvicorn's stock one)."""
        return self.name != "fastapi"


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn", "fastapi"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    name: str = request.param
    with serve(
        launcher(name),
        tmp_path_factory.mktemp(name),
        WEB_CONCURRENCY="1",
        MAX_BODY_SIZE="64KiB",
        MAX_HEADER_SIZE="16KiB",
        HEADER_TIMEOUT="1",
        KEEP_ALIVE_TIMEOUT="1",
        FORWARDED_ALLOW_IPS="10.9.8.7",  # a proxy that is not us: our X-Forwarded-For is a lie
    ) as s:
        yield Target(name, s)
        assert httpx.get(s.url + "/healthz").status_code == 200, "still serving after it all"


def exchange(port: int, chunks: list[bytes], pause: float = 0, timeout: float = 5) -> bytes:
    """Send `chunks` (stopping early once the server answers), then read until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for chunk in chunks:
            if select.select([sock], [], [], pause)[0]:
                break  # answered already: sending more would only earn a reset
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
        return received


def until_answered(sock: socket.socket) -> bytes:
    """The response to a request for a small JSON document, on a connection kept open."""
    received = b""
    while b"\r\n\r\n" not in received or not received.endswith(b"}"):
        data = sock.recv(65536)
        assert data, f"closed, having sent {received!r}"  # b"" would spin for ever
        received += data
    return received


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def body(response: bytes) -> object:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def test_malformed_request_line_gets_400(target: Target) -> None:
    assert status(exchange(target.port, [b"GARBAGE / WHAT\x00\r\n\r\n"])) == 400


def test_oversized_headers(target: Target) -> None:
    big = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] + [b"X-Filler: " + b"a" * 4000 + b"\r\n"] * 50
    response = exchange(target.port, [*big, b"\r\n"])
    # Stock httptools (fastapi-cli) takes a 200 kB header block; ours stops at MAX_HEADER_SIZE.
    assert status(response) == (431 if target.protected else 200)


def test_overlong_url(target: Target) -> None:
    response = exchange(target.port, [b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert status(response) == (414 if target.protected else 404)


def test_announced_huge_body_gets_413_at_once(target: Target) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    started = time.monotonic()
    response = exchange(target.port, [head + b"Content-Length: 52428800\r\n\r\n"])
    assert time.monotonic() - started < 2
    assert status(response) == 413
    assert b"\r\nconnection: close\r\n" in response.lower()
    assert body(response) == {"detail": "Request body larger than MAX_BODY_SIZE (65536 bytes)."}


def test_chunked_body_over_the_limit_gets_413(target: Target) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"  # 16 KiB each, and never a Content-Length
    response = exchange(
        target.port, [head + b"Transfer-Encoding: chunked\r\n\r\n", *[chunk] * 64], pause=0.01
    )
    assert status(response) == 413
    assert body(response) == {"detail": "Request body larger than MAX_BODY_SIZE (65536 bytes)."}


def test_invalid_json_gets_a_useful_422(target: Target) -> None:
    response = httpx.post(
        target.server.url + "/echo",
        content=b'{"text": "unterminated',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["type"], error["msg"]) == ("json_invalid", "JSON decode error")


def test_invalid_field_gets_a_useful_422(target: Target) -> None:
    response = httpx.post(target.server.url + "/echo", json={"text": ""})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "text"], "string_too_short")


def responses(stream: bytes, methods: list[str]) -> list[tuple[int, bytes]]:
    """Split pipelined responses by their heads' Content-Length: (status, body) for each."""
    found = []
    for method in methods:
        head, stream = stream.split(b"\r\n\r\n", 1)
        length = 0 if method == "HEAD" or status(head) == 100 else content_length(head)
        found.append((status(head), stream[:length]))
        stream = stream[length:]
    assert stream == b"", "nothing after the last response"
    return found


def content_length(head: bytes) -> int:
    (value,) = (
        line[15:] for line in head.lower().split(b"\r\n") if line[:15] == b"content-length:"
    )
    return int(value)


def test_pipelined_requests_each_get_their_whole_response(target: Target) -> None:
    """HEAD, 100 Continue and keep-alive framing, in order, on one connection: our protocol
    sends a response's head and body in one write, and must hold back only what a body follows."""
    echo = b'{"text": "hello"}'
    requests = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n%s" % (len(echo), echo),
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    found = responses(
        exchange(target.port, [b"".join(requests)]), ["GET", "HEAD", "", "POST", "GET"]
    )
    assert [code for code, _ in found] == [200, 200, 100, 200, 404]
    assert json.loads(found[0][1]) == {"status": "ok"}
    assert found[1][1] == b""
    assert json.loads(found[3][1])["length"] == 5
    assert json.loads(found[4][1]) == {"detail": "Not Found"}


def test_head_is_answered_at_once_on_a_kept_alive_connection(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=0.5) as sock:
        for _ in range(2):
            sock.sendall(b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while not received.endswith(b"\r\n\r\n"):  # before KEEP_ALIVE_TIMEOUT=1 closes it
                data = sock.recv(65536)
                assert data, f"closed, having sent {received!r}"  # b"" would spin for ever
                received += data
            assert status(received) == 200
            assert content_length(received) == len(b'{"status":"ready"}')


def test_a_response_outlives_its_turn_being_blocked_past_the_keep_alive_timeout(
    target: Target,
) -> None:
    """Our protocol sends a turn's responses as the turn ends: one answered just before another
    handler blocks the loop past KEEP_ALIVE_TIMEOUT=1 must still reach its client, although the
    connection's keep-alive timer is due before the turn's end comes round."""
    connect = partial(socket.create_connection, ("127.0.0.1", target.port), timeout=5)
    blocking = target.server.output().count(BLOCKING)
    with connect() as busy, connect() as quick, connect() as blocker:
        for sock in (busy, quick, blocker):  # each accepted: it is answered
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status(until_answered(sock)) == 200
        busy.sendall(b"GET /block?seconds=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Once the loop is blocked, the next two requests are read in one turn.
        wait_for(lambda: target.server.output().count(BLOCKING) > blocking, 5, "a blocked loop")
        quick.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        blocker.sendall(b"GET /block?seconds=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while data := quick.recv(65536):  # until the keep-alive timer closes it
            received += data
    assert status(received) == 200
    assert body(received) == {"status": "ok"}


def test_slow_headers_get_408(target: Target) -> None:
    """A slowloris client, one header line every 0.3 s, never finishing."""
    lines = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 10
    started = time.monotonic()
    response = exchange(target.port, lines, pause=0.3, timeout=2)
    if target.protected:
        assert status(response) == 408
        assert time.monotonic() - started < 3  # HEADER_TIMEOUT=1, with room for a slow machine
    else:
        assert response == b"", "stock uvicorn waits for ever: only our give-up ended it"


def assert_timed_out(sock: socket.socket, target: Target) -> None:
    """Our protocol closes an idle connection after KEEP_ALIVE_TIMEOUT=1; stock uvicorn (the
    fastapi launcher) has no timer on it here."""
    started = time.monotonic()
    if target.protected:
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3
    else:
        sock.settimeout(2.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_idle_connection_is_closed_after_the_keep_alive_timeout(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=5) as sock:
        assert_timed_out(sock, target)  # before any request: stock uvicorn arms no timer


def test_a_body_sent_after_its_answer_still_leaves_the_connection_timed(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert status(until_answered(sock)) == 200  # answered, its body unread
        sock.sendall(b"0123456789")
        assert_timed_out(sock, target)  # stock uvicorn: the body's arrival stopped its timer


def test_no_server_banner_and_spoofed_forwarding_ignored(target: Target) -> None:
    response = httpx.get(target.server.url + "/info", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.json()["client"] == "127.0.0.1", "FORWARDED_ALLOW_IPS does not include us"
    assert ("server" in response.headers) == (not target.protected)


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_forwarded_client_trusted_from_the_allowed_proxy(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serve(launcher(name), tmp_path_factory.mktemp(name), WEB_CONCURRENCY="1") as server:
        headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        assert httpx.get(server.url + "/info", headers=headers).json()["client"] == "203.0.113.7"


CLOSE = b"Connection: close\r\n\r\n"


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_requests_beyond_the_limit_get_503(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """MAX_CONNECTIONS counts requests in progress: idle connections do not take its places."""
    workdir = tmp_path_factory.mktemp(name)
    with serve(launcher(name), workdir, WEB_CONCURRENCY="1", MAX_CONNECTIONS="3") as server:
        port = server.port
        probe = partial(exchange, port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + CLOSE])
        held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(3)]
        try:
            assert status(probe()) == 200, "three idle connections leave room for a request"
            # Held well past the polling deadline: on a loaded machine the three may take a
            # while to start, and must still be running when the probe is refused.
            for sock in held:
                sock.sendall(b"GET /sleep?seconds=10 HTTP/1.1\r\nHost: x\r\n" + CLOSE)
            deadline = time.monotonic() + 5
            while (response := probe()) and status(response) == 200:  # until the three run
                assert time.monotonic() < deadline, "never refused"
            assert status(response) == 503
            assert response.endswith(b"\r\n\r\nService Unavailable")
            for sock in held:  # the three in progress are served in full
                assert status(exchange_on(sock)) == 200
        finally:
            for sock in held:
                sock.close()
        assert status(probe()) == 200


def exchange_on(sock: socket.socket) -> bytes:
    received = b""
    while data := sock.recv(65536):
        received += data
    return received


FLOOD = 120


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_a_flood_of_idle_connections_leaves_the_worker_answering(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """More idle connections than MAX_CONNECTIONS on one worker: its probes, and any request,
    are still answered, as they were not when the limit counted connections."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * FLOOD + 256:  # ours and the worker's
        pytest.skip("too low a file descriptor limit for the flood")
    workdir = tmp_path_factory.mktemp(name)
    with serve(
        launcher(name), workdir, WEB_CONCURRENCY="1", MAX_CONNECTIONS="50", KEEP_ALIVE_TIMEOUT="60"
    ) as server:
        port = server.port
        idle: list[socket.socket] = []
        try:
            for _ in range(FLOOD):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            # Accepted in order: the worker holds the flood once it answers a later connection.
            for path in (b"/healthz", b"/readyz", b"/info"):
                request = b"GET %s HTTP/1.1\r\nHost: x\r\n%s" % (path, CLOSE)
                assert status(exchange(port, [request])) == 200, path
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + CLOSE)
            assert status(exchange_on(idle[0])) == 200, "the flood was held all along"
        finally:
            for sock in idle:
                sock.close()
