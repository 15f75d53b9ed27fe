"""The kit's in-app features (`launchers.features.install`), on the kit's test app through httpx,
its lifespan running: probes and draining, the GC freeze, request ids, the body limit, safe 422s."""

from __future__ import annotations

import gc
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

import httpx
import pytest

from launchers.settings import Settings
from tests import kitapp
from tests.servers import with_asgi

Check = Callable[[httpx.AsyncClient], Awaitable[None]]


def with_app(check: Check, **settings: Any) -> None:
    with_asgi(kitapp.build(Settings.model_validate(settings)), check)


def test_probes() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (await client.head("/readyz")).status_code == 200

    with_app(check)


def test_startup_heap_is_frozen_out_of_full_collections() -> None:
    """What start-up made is walked by no collection after it (docs: performance)."""
    gc.unfreeze()

    async def check(client: httpx.AsyncClient) -> None:
        assert gc.get_freeze_count() > 10_000  # the modules, the app and its routes

    try:
        with_app(check)
    finally:
        gc.unfreeze()


def test_readyz_turns_503_on_sigterm_and_the_server_handler_still_runs() -> None:
    """The lifespan chains onto the server's SIGTERM handler: drain first, then the server's."""
    received: list[int] = []

    def server_handler(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:

        async def check(client: httpx.AsyncClient) -> None:
            signal.raise_signal(signal.SIGTERM)
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
            assert (await client.get("/healthz")).status_code == 200

        with_app(check)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is server_handler, "restored after the lifespan"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_request_ids_are_kept_when_sane_and_made_otherwise() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        kept = await client.get("/info", headers={"X-Request-ID": "abc-123"})
        assert kept.headers["x-request-id"] == "abc-123"
        made = {(await client.get("/info")).headers["x-request-id"] for _ in range(3)}
        spaced = await client.get("/info", headers={"X-Request-ID": "a b"})
        made.add(spaced.headers["x-request-id"])
        assert len(made) == 4, "a new id for each"
        assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in made)

    with_app(check)


TOO_LARGE = {"detail": "Request body larger than MAX_BODY_SIZE (1024 bytes)."}


def test_a_body_over_max_body_size_gets_413_announced_or_streamed() -> None:
    text = json.dumps({"text": "x" * 2000}).encode()

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(text), 256):
            yield text[start : start + 256]

    async def check(client: httpx.AsyncClient) -> None:
        json_type = {"content-type": "application/json"}
        announced = await client.post("/echo", content=text, headers=json_type)
        assert (announced.status_code, announced.json()) == (413, TOO_LARGE)
        assert announced.headers["connection"] == "close"
        chunked = await client.post("/echo", content=streamed(), headers=json_type)
        assert (chunked.status_code, chunked.json()) == (413, TOO_LARGE)
        small = await client.post("/echo", json={"text": "x" * 1000})
        assert (small.status_code, small.json()["length"]) == (200, 1000)

    with_app(check, max_body_size="1KiB")


def _strict(constant: str) -> object:
    raise AssertionError(f"not JSON: a bare {constant}")


MULTIPART = "multipart/form-data; boundary=x"


@pytest.mark.parametrize(
    ("content_type", "raw", "expected", "echoed"),
    [
        # Not JSON: FastAPI echoes the raw bytes as the error's input.
        pytest.param("text/plain", b"\xff\xfe", 422, "\\xff\\xfe", id="text-not-utf8"),
        pytest.param("text/plain; charset=utf-8", b"\xc3", 422, "\\xc3", id="text-truncated"),
        pytest.param(
            "application/x-www-form-urlencoded", b"\xff\xfe", 422, "\\xff\\xfe", id="form-not-utf8"
        ),
        pytest.param("application/octet-stream", b"\xff", 422, "\\xff", id="octet-stream"),
        pytest.param(None, b"\xff\xfe", 422, "\\xff\\xfe", id="no-content-type"),
        pytest.param(MULTIPART, b"garbage\xff", 422, "garbage\\xff", id="multipart-garbage"),
        pytest.param(
            MULTIPART,
            b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\r\n--x--\r\n',
            422,
            None,
            id="multipart-part-not-utf8",
        ),
        # JSON that is not UTF-8: a BOM of UTF-16 that leads nowhere, or a stray byte in a string.
        pytest.param("application/json", b"\xff\xfe", 422, None, id="json-utf16-bom"),
        pytest.param("application/json", b'{"text": "\xff"}', 400, None, id="json-not-utf8"),
        # Numbers Python's JSON reads but a strict parser would not read back.
        pytest.param("application/json", b"NaN", 422, "NaN", id="json-nan"),
        pytest.param("application/json", b'{"text": 1e400}', 422, "Infinity", id="json-infinity"),
    ],
)
def test_bodies_of_any_bytes_get_a_json_client_error(
    content_type: str | None, raw: bytes, expected: int, echoed: object
) -> None:
    """No body a client can send makes a 500; the answer is JSON a strict parser reads, with
    FastAPI's 422 shape (or its own 400 for a JSON body it cannot decode)."""

    async def check(client: httpx.AsyncClient) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = await client.post("/echo", content=raw, headers=headers)
        assert response.status_code == expected, response.text
        assert response.headers["content-type"] == "application/json"
        answer = json.loads(response.text, parse_constant=_strict)
        if expected == 400:
            assert answer == {"detail": "There was an error parsing the body"}
            return
        (error,) = answer["detail"]
        assert {"type", "loc", "msg", "input"} <= set(error)
        assert error["loc"][0] == "body"
        if echoed is not None:
            assert error["input"] == echoed

    with_app(check)


def test_a_lone_surrogate_gets_a_422_that_can_be_sent() -> None:
    """A JSON escape can make a lone surrogate, which UTF-8 cannot encode: the 422 that echoes it
    back as its input must still be sent."""

    async def check(client: httpx.AsyncClient) -> None:
        raw = b'{"text": "a\\ud800b"}'
        json_type = {"content-type": "application/json"}
        response = await client.post("/echo", content=raw, headers=json_type)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert (error["loc"], error["type"], error["input"]) == (
            ["body", "text"],
            "string_unicode",
            "a\ud800b",
        )

    with_app(check)
