"""RFC 9112's refusals and the request body's deadline, over raw sockets, on the launchers that
run our protocol (uvicorn, gunicorn): exact answers, connections closed, nothing smuggled."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from launchers.uvicorn.framing import refusal
from tests.servers import launcher, serve

BODY_TIMEOUT = 1.0
# Behind every case: answered only if the server took the bytes before it as a whole request.
PIPELINED = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
GET = b"GET /info HTTP/1.1\r\n"
POST = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
ECHO = b'{"text": "hello"}'  # 17 bytes, 0x11
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
LAST = b"\r\n0\r\n\r\n"


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    name: str = request.param
    workdir = tmp_path_factory.mktemp(name)
    with serve(launcher(name), workdir, WEB_CONCURRENCY="1", BODY_TIMEOUT=str(BODY_TIMEOUT)) as s:
        yield s.port


def until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything the server sends until it closes the connection (within `timeout`)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"still open after {timeout} s, having sent {received!r}") from None
    return received


def responses(stream: bytes) -> list[tuple[bytes, bytes]]:
    """(head, body) of each response in `stream`, by their Content-Length."""
    found = []
    while stream:
        head, stream = stream.split(b"\r\n\r\n", 1)
        fields = dict(line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:])
        length = int(fields.get(b"content-length", b"0"))
        found.append((head, stream[:length]))
        stream = stream[length:]
    return found


def status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


# (request, status): what RFC 9112 says to refuse. The first group is refused by our protocol
# (launchers.uvicorn.framing), the rest by httptools (llhttp) already: kept here so that neither a
# parser upgrade nor a leniency turned on quietly lets one through.
REFUSED = [
    pytest.param(GET + b"\r\n", 400, id="3.2-no-host"),
    pytest.param(b"GET http://x/info HTTP/1.1\r\n\r\n", 400, id="3.2-no-host-absolute-form"),
    pytest.param(GET + b"Host: x\r\nHost: y\r\n\r\n", 400, id="3.2-two-hosts"),
    pytest.param(GET + b"Host: x\r\nHost: x\r\n\r\n", 400, id="3.2-same-host-twice"),
    pytest.param(GET + b"Host: a b\r\n\r\n", 400, id="3.2-host-with-space"),
    pytest.param(GET + b"Host: user@x\r\n\r\n", 400, id="3.2-host-with-userinfo"),
    pytest.param(GET + b"Host: x/y\r\n\r\n", 400, id="3.2-host-with-path"),
    pytest.param(
        POST.replace(b"1.1", b"1.0") + CHUNKED + b"11\r\n" + ECHO + LAST, 400, id="6.1-chunked-1.0"
    ),
    pytest.param(POST + b"Transfer-Encoding: gzip\r\n\r\n" + ECHO, 400, id="6.3-gzip-not-chunked"),
    pytest.param(
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n11\r\n" + ECHO + LAST,
        501,
        id="6.1-gzip-then-chunked",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: gzip\r\n" + CHUNKED + b"11\r\n" + ECHO + LAST,
        501,
        id="6.1-gzip-then-chunked-two-lines",
    ),
    # llhttp's own refusals from here on.
    pytest.param(
        POST + b"Content-Length: 17\r\n" + CHUNKED + b"11\r\n" + ECHO + LAST, 400, id="6.1-cl-te"
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 17\r\n\r\n11\r\n" + ECHO + LAST,
        400,
        id="6.1-te-cl",
    ),
    pytest.param(
        POST + b"Content-Length: 17\r\nContent-Length: 18\r\n\r\n" + ECHO + b" ",
        400,
        id="6.3-two-lengths",
    ),
    pytest.param(
        POST + b"Content-Length: 17\r\nContent-Length: 17\r\n\r\n" + ECHO,
        400,
        id="6.3-same-length-twice",
    ),
    pytest.param(POST + b"Content-Length: 17, 17\r\n\r\n" + ECHO, 400, id="6.3-length-list"),
    pytest.param(POST + b"Content-Length: abc\r\n\r\n" + ECHO, 400, id="6.3-length-alpha"),
    pytest.param(POST + b"Content-Length: -17\r\n\r\n" + ECHO, 400, id="6.3-length-negative"),
    pytest.param(POST + b"Content-Length: +17\r\n\r\n" + ECHO, 400, id="6.3-length-signed"),
    pytest.param(POST + b"Content-Length: 0x11\r\n\r\n" + ECHO, 400, id="6.3-length-hex"),
    pytest.param(POST + b"Content-Length: 1 7\r\n\r\n" + ECHO, 400, id="6.3-length-split"),
    pytest.param(POST + b"Content-Length:\r\n\r\n" + ECHO, 400, id="6.3-length-empty"),
    pytest.param(
        POST + b"Content-Length: 99999999999999999999999\r\n\r\n" + ECHO,
        400,
        id="6.3-length-overflow",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n11\r\n" + ECHO + LAST,
        400,
        id="6.3-chunked-not-last",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n11\r\n" + ECHO + LAST,
        400,
        id="7-chunked-twice",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\n" + CHUNKED + b"11\r\n" + ECHO + LAST,
        400,
        id="7-chunked-twice-two-lines",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: xchunked\r\n\r\n11\r\n" + ECHO + LAST,
        400,
        id="6.3-unknown-coding",
    ),
    pytest.param(POST + b"Transfer-Encoding: identity\r\n\r\n" + ECHO, 400, id="6.3-identity"),
    pytest.param(POST + b"Transfer-Encoding:\r\n\r\n" + ECHO, 400, id="6.3-empty-coding"),
    pytest.param(POST + CHUNKED + b"zz\r\n" + ECHO + LAST, 400, id="7.1-size-not-hex"),
    pytest.param(POST + CHUNKED + b"0x11\r\n" + ECHO + LAST, 400, id="7.1-size-0x"),
    pytest.param(POST + CHUNKED + b"-11\r\n" + ECHO + LAST, 400, id="7.1-size-negative"),
    pytest.param(
        POST + CHUNKED + b"fffffffffffffffff11\r\n" + ECHO + LAST, 400, id="7.1-size-overflow"
    ),
    pytest.param(POST + CHUNKED + b"11 \r\n" + ECHO + LAST, 400, id="7.1-space-after-size"),
    pytest.param(POST + CHUNKED + b" 11\r\n" + ECHO + LAST, 400, id="7.1-space-before-size"),
    pytest.param(POST + CHUNKED + b"11\n" + ECHO + LAST, 400, id="7.1-bare-lf-after-size"),
    pytest.param(POST + CHUNKED + b"11\r\n" + ECHO + b"\n0\r\n\r\n", 400, id="7.1-bare-lf-data"),
    pytest.param(POST + CHUNKED + b"5\r\n" + ECHO + LAST, 400, id="7.1-data-longer-than-size"),
    pytest.param(POST + CHUNKED + b"11;\r\n" + ECHO + LAST, 400, id="7.1.1-empty-extension"),
    pytest.param(POST + CHUNKED + b"11;a\x00b\r\n" + ECHO + LAST, 400, id="7.1.1-extension-nul"),
    pytest.param(POST + CHUNKED + b"11;a\nb\r\n" + ECHO + LAST, 400, id="7.1.1-extension-lf"),
    pytest.param(POST + CHUNKED + b"11;a\rb\r\n" + ECHO + LAST, 400, id="7.1.1-extension-cr"),
    pytest.param(
        POST + CHUNKED + b'11;a="b\r\n' + ECHO + LAST, 400, id="7.1.1-extension-unterminated"
    ),
    pytest.param(
        POST + CHUNKED + b"11\r\n" + ECHO + b"\r\n0\r\nX Y: z\r\n\r\n", 400, id="7.1.2-bad-trailer"
    ),
    pytest.param(GET + b"Host : x\r\n\r\n", 400, id="5.1-space-before-colon"),
    pytest.param(GET + b"Host\t: x\r\n\r\n", 400, id="5.1-tab-before-colon"),
    pytest.param(POST + b"Content-Length : 17\r\n\r\n" + ECHO, 400, id="5.1-space-colon-length"),
    pytest.param(GET + b"Host: x\r\nX-A: a\r\n b\r\n\r\n", 400, id="5.2-obs-fold"),
    pytest.param(GET + b"Host: x\r\nX-A: a\r\n\tb\r\n\r\n", 400, id="5.2-obs-fold-tab"),
    pytest.param(GET + b" Host: x\r\n\r\n", 400, id="2.2-space-before-first-field"),
    pytest.param(b"GET /info HTTP/1.1\nHost: x\n\n", 400, id="2.2-bare-lf"),
    pytest.param(GET + b"Host: x\n\r\n", 400, id="2.2-bare-lf-ending-a-field"),
    pytest.param(b"GET /info HTTP/1.1\rHost: x\r\n\r\n", 400, id="2.2-bare-cr-line"),
    pytest.param(GET + b"Host: x\r\nX-A: a\rb\r\n\r\n", 400, id="2.2-bare-cr-value"),
    pytest.param(GET + b"Host: x\r\nX A: b\r\n\r\n", 400, id="5.1-name-with-space"),
    pytest.param(GET + b"Host: x\r\nX@A: b\r\n\r\n", 400, id="5.1-name-not-token"),
    pytest.param(GET + b"Host: x\r\n: b\r\n\r\n", 400, id="5.1-empty-name"),
    pytest.param(GET + b"Host: x\r\nX\x00A: b\r\n\r\n", 400, id="5.1-name-nul"),
    pytest.param(GET + b"Host: x\r\nX\xffA: b\r\n\r\n", 400, id="5.1-name-not-ascii"),
    pytest.param(GET + b"Host: x\r\nXA\r\n\r\n", 400, id="5.1-no-colon"),
    pytest.param(GET + b"Host: x\r\nX-A: a\x00b\r\n\r\n", 400, id="5.5-value-nul"),
    pytest.param(GET + b"Host: x\r\nX-A: a\x01b\r\n\r\n", 400, id="5.5-value-control"),
    pytest.param(GET + b"Host: x\r\nX-A: a\x7fb\r\n\r\n", 400, id="5.5-value-del"),
]


@pytest.mark.parametrize(("request_", "expected"), REFUSED)
def test_refused_with_the_connection_closed(port: int, request_: bytes, expected: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_ + PIPELINED)
        found = responses(until_closed(sock))
    assert len(found) == 1, f"the request behind it was answered too: {found}"
    ((head, _body),) = found
    assert status(head) == expected
    assert b"\r\nconnection: close" in head.lower()


@pytest.mark.parametrize(
    ("hosts", "codings", "version", "expected"),
    [
        (1, None, "1.1", None),
        (0, None, "1.0", None),
        (0, None, "1.1", (400, "Missing Host header.")),
        (2, None, "1.0", (400, "More than one Host header.")),
        (1, b"chunked", "1.1", None),
        (1, b" Chunked ", "1.1", None),
        (1, b"chunked", "1.0", (400, "Transfer-Encoding in an HTTP/1.0 request.")),
        (1, b"gzip", "1.1", (400, "Transfer-Encoding of a request must end with chunked.")),
        (
            1,
            b"gzip,chunked",
            "1.1",
            (501, "Transfer codings other than chunked are not implemented."),
        ),
    ],
)
def test_refusal(
    hosts: int, codings: bytes | None, version: str, expected: tuple[int, str] | None
) -> None:
    assert refusal(hosts, codings, version) == expected


# What the RFC allows, so that the refusals above are not taken too far.
SERVED = [
    pytest.param(GET + b"Host: x\r\n\r\n", id="plain"),
    pytest.param(GET + b"Host:\r\n\r\n", id="3.2-empty-host"),
    pytest.param(GET + b"Host: x \r\n\r\n", id="5.5-host-trailing-whitespace"),
    pytest.param(GET + b"Host: 127.0.0.1:8000\r\n\r\n", id="3.2-host-and-port"),
    pytest.param(GET + b"Host: [::1]:8000\r\n\r\n", id="3.2-ip-literal"),
    pytest.param(b"GET http://x/info HTTP/1.1\r\nHost: x\r\n\r\n", id="3.2.2-absolute-form"),
    pytest.param(b"\r\n" + GET + b"Host: x\r\n\r\n", id="2.2-empty-line-first"),
    pytest.param(POST + CHUNKED + b"11\r\n" + ECHO + LAST, id="7.1-chunked"),
    pytest.param(POST + CHUNKED + b'11;a=b;c="d e"\r\n' + ECHO + LAST, id="7.1.1-extensions"),
    pytest.param(
        POST + b"Transfer-Encoding:  Chunked \r\n\r\n11\r\n" + ECHO + LAST, id="7-coding-case"
    ),
    pytest.param(POST + b"Content-Length: 017\r\n\r\n" + ECHO, id="6.3-leading-zero"),
]


@pytest.mark.parametrize("request_", SERVED)
def test_allowed_framing_is_served_and_the_next_request_too(port: int, request_: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_ + PIPELINED)
        found = responses(until_closed(sock))
    assert [status(head) for head, _ in found] == [200, 200]


def test_http_1_0_may_omit_host(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /info HTTP/1.0\r\n\r\n")
        ((head, _body),) = responses(until_closed(sock))
    assert status(head) == 200


HEAD_100K = POST + b"Content-Length: 100000\r\n\r\n"


def trickle(sock: socket.socket, data: bytes, gap: float, limit: float = 10) -> float:
    """Send `data` a piece per `gap` seconds until the server answers or closes; the time
    from the first send to its answer."""
    started = time.monotonic()
    for piece in data:
        if select.select([sock], [], [], gap)[0]:
            break
        sock.sendall(bytes([piece]))
        assert time.monotonic() - started < limit, "never answered"
    return time.monotonic() - started


@pytest.mark.parametrize(
    "gap",
    [
        pytest.param(0.25, id="a-byte-every-quarter-second"),  # never silent for BODY_TIMEOUT
        pytest.param(BODY_TIMEOUT * 2, id="a-byte-every-two-timeouts"),
    ],
)
def test_a_trickled_body_gets_408(port: int, gap: float) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HEAD_100K)
        elapsed = trickle(sock, b"x" * 100, gap)
        ((head, body),) = responses(until_closed(sock))
    assert status(head) == 408
    assert b"\r\nconnection: close" in head.lower()
    assert body == b"Request body not received in time."
    assert BODY_TIMEOUT * 0.9 < elapsed < BODY_TIMEOUT + 2  # room for a slow machine


def test_a_steady_slow_body_is_not_cut_off(port: int) -> None:
    """Well over MIN_BODY_RATE (1 KiB/s), for three times BODY_TIMEOUT."""
    text = "x" * 9000
    body = json.dumps({"text": text}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        started = time.monotonic()
        for offset in range(0, len(body), 250):
            assert not select.select([sock], [], [], 0.1)[0], "answered before the body was in"
            sock.sendall(body[offset : offset + 250])
        assert time.monotonic() - started > 3 * BODY_TIMEOUT
        ((head, answer),) = responses(until_closed(sock))
    assert status(head) == 200
    assert json.loads(answer)["length"] == len(text)


def test_a_body_sent_in_time_is_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(POST + b"Content-Length: 17\r\nConnection: close\r\n\r\n")
        assert not select.select([sock], [], [], BODY_TIMEOUT / 2)[0]
        sock.sendall(ECHO)
        ((head, answer),) = responses(until_closed(sock))
    assert status(head) == 200
    assert json.loads(answer)["length"] == 5


SLEEP = b"GET /sleep?seconds=2.5 HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "request_",
    [
        # uvicorn stops reading a body the app does not take (flow control).
        pytest.param(SLEEP + b"Content-Length: 1000000\r\n\r\n" + b"x" * 1_000_000, id="unread"),
        # The client waits for a 100 Continue, which only the app's first read would send.
        pytest.param(
            SLEEP + b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n", id="100-continue"
        ),
    ],
)
def test_a_body_the_app_does_not_ask_for_is_not_held_against_the_client(
    port: int, request_: bytes
) -> None:
    """The client waits on the app, longer than BODY_TIMEOUT, and is answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_)
        received = b""
        while not (b"elapsed_ms" in received and received.endswith(b"}")):
            data = sock.recv(65536)
            assert data, f"closed, having sent {received!r}"
            received += data
    ((head, body),) = responses(received)
    assert status(head) == 200
    assert json.loads(body)["elapsed_ms"] > 2000 * BODY_TIMEOUT  # it kept the client waiting


def test_a_trickle_after_the_response_is_closed_without_a_408(port: int) -> None:
    """The app answered without reading the body: too late for a 408, the connection closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        received = b""
        while not received.endswith(b'{"status":"ok"}'):
            data = sock.recv(65536)
            assert data, f"closed, having sent {received!r}"  # recv's b"" would spin for ever
            received += data
        elapsed = trickle(sock, b"x" * 100, 0.25)  # each byte puts off the keep-alive timer
        received += until_closed(sock)
    ((head, body),) = responses(received)
    assert (status(head), json.loads(body)) == (200, {"status": "ok"})
    assert elapsed < BODY_TIMEOUT + 2
