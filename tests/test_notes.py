"""`/notes` on real servers, on SQLite and on PostgreSQL: the API, state shared by workers, and
no acknowledged write lost to killed workers, reloads or a restart on another launcher."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.models import MAX_ID
from tests.databases import empty
from tests.servers import ROOT, Server, clean_env, launcher, serve, settled_workers

FRESH = {"Connection": "close"}


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    empty(database)
    workdir = tmp_path_factory.mktemp("notes")
    with serve(launcher("uvicorn"), workdir, WEB_CONCURRENCY="1", DATABASE_URL=database) as s:
        yield s


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url + "/notes", json=body)


def test_create_read_list_delete(server: Server) -> None:
    created = post(server.url, {"text": "première note ✓"})
    assert created.status_code == 201
    note = created.json()
    assert set(note) == {"id", "text", "created_at"}
    assert note["text"] == "première note ✓"
    stamp = datetime.fromisoformat(note["created_at"])
    assert stamp.utcoffset() == timedelta(0), "in UTC, with its time zone"
    assert abs(time.time() - stamp.timestamp()) < 60

    read = httpx.get(f"{server.url}/notes/{note['id']}")
    assert (read.status_code, read.json()) == (200, note)

    more = [post(server.url, {"text": f"n{i}"}).json() for i in range(3)]
    listed = httpx.get(server.url + "/notes", params={"limit": 2, "offset": 1}).json()
    assert listed == more[:2]
    assert httpx.get(server.url + "/notes", params={"offset": 10_000}).json() == []
    assert httpx.get(server.url + "/notes", params={"offset": MAX_ID}).json() == []

    assert httpx.delete(f"{server.url}/notes/{note['id']}").status_code == 204
    gone = httpx.get(f"{server.url}/notes/{note['id']}")
    assert (gone.status_code, gone.json()) == (404, {"detail": f"Note {note['id']} not found."})
    assert httpx.delete(f"{server.url}/notes/{note['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "location", "kind"),
    [
        ({"text": ""}, ["body", "text"], "string_too_short"),
        ({"text": "x" * 10_001}, ["body", "text"], "string_too_long"),
        ({"text": 42}, ["body", "text"], "string_type"),
        ({}, ["body", "text"], "missing"),
        ([], ["body"], "model_attributes_type"),
    ],
)
def test_invalid_notes_get_a_useful_422(
    server: Server, body: object, location: list[str], kind: str
) -> None:
    response = post(server.url, body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"]) == (location, kind)


def test_nul_and_lone_surrogates_get_a_422_on_either_database(server: Server) -> None:
    """PostgreSQL's text cannot hold NUL, SQLite's can: refused on both. A lone surrogate, which
    a JSON escape can make and UTF-8 cannot encode, is refused in a 422 that can be sent."""
    nul = post(server.url, {"text": "a\u0000b"})
    assert nul.status_code == 422, nul.text
    assert nul.json()["detail"] == [
        {
            "type": "string_nul",
            "loc": ["body", "text"],
            "msg": "Text cannot contain the NUL character (U+0000)",
            "input": "a\u0000b",
        }
    ]
    raw = b'{"text": "a\\ud800b"}'
    lone = httpx.post(
        server.url + "/notes", content=raw, headers={"content-type": "application/json"}
    )
    assert lone.status_code == 422, lone.text
    (error,) = lone.json()["detail"]
    assert (error["loc"], error["type"], error["input"]) == (
        ["body", "text"],
        "string_unicode",
        "a\ud800b",
    )


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
    server: Server, content_type: str | None, raw: bytes, expected: int, echoed: str | None
) -> None:
    """No body a client can send makes a 500; the answer is JSON a strict parser reads, with
    FastAPI's 422 shape (or its own 400 for a JSON body it cannot decode)."""
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(server.url + "/notes", content=raw, headers=headers)
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


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": MAX_ID + 1}, "offset"),
        ({"offset": 10**30}, "offset"),  # past 64 bits: the driver's integers overflow
    ],
)
def test_pages_are_bounded(server: Server, query: dict[str, int], name: str) -> None:
    response = httpx.get(server.url + "/notes", params=query)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_unknown_ids_are_404_or_422(server: Server) -> None:
    assert httpx.get(server.url + "/notes/987654").status_code == 404
    assert httpx.get(server.url + "/notes/abc").status_code == 422


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_ids_no_note_can_have_are_422(server: Server, method: str) -> None:
    """Ids start at 1, and `notes.id` holds none past MAX_ID (32 bits on PostgreSQL)."""
    assert httpx.request(method, f"{server.url}/notes/{MAX_ID}").status_code == 404
    for note_id in (0, -1, MAX_ID + 1, 2**63, 10**30):
        response = httpx.request(method, f"{server.url}/notes/{note_id}")
        assert response.status_code == 422, note_id
        assert response.json()["detail"][0]["loc"] == ["path", "note_id"]


@pytest.mark.parametrize(
    ("name", "preload"),
    # With PRELOAD the master imports the app before forking: no connection may cross the fork.
    [("uvicorn", "false"), ("gunicorn", "false"), ("gunicorn", "true")],
)
def test_read_your_write_on_any_worker(
    name: str, preload: str, database: str, tmp_path: Path
) -> None:
    empty(database)
    with serve(
        launcher(name),
        tmp_path,
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        DATABASE_URL=database,
        PRELOAD=preload,
    ) as server:
        note = post(server.url, {"text": "seen by every worker"}).json()
        for _ in range(20):  # fresh connections: either worker answers
            read = httpx.get(f"{server.url}/notes/{note['id']}", headers=FRESH)
            assert (read.status_code, read.json()) == (200, note)
        time.sleep(0.2)  # the last access line follows its response
        readers = {
            entry["pid"]
            for entry in map(json.loads, server.output().splitlines())
            if entry.get("route") == "/notes/{note_id}"
        }
        assert len(readers) == 2, "read on both workers"


@pytest.mark.timeout(120)
def test_no_acknowledged_note_is_lost(database: str, tmp_path: Path) -> None:
    """Writers run through gunicorn while a worker is killed and the manager reloads twice; the
    server stops, the uvicorn launcher starts on the same database: every 201 reads back."""
    empty(database)
    acknowledged: dict[int, dict[str, object]] = {}
    failed = 0

    async def writer(url: str, number: int, until: float) -> None:
        nonlocal failed
        async with httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < until:
                body = {"text": f"writer {number}: {uuid.uuid4()}"}
                try:
                    response = await client.post(url + "/notes", json=body)
                except httpx.TransportError:
                    failed += 1  # never acknowledged: it may or may not have been written
                    continue
                assert response.status_code == 201, response.text
                note = response.json()
                assert note["text"] == body["text"]
                acknowledged[note["id"]] = note

    async def load(server: Server) -> None:
        until = time.monotonic() + 8
        writers = [asyncio.ensure_future(writer(server.url, n, until)) for n in range(4)]
        manager = server.proc.pid
        await asyncio.sleep(1)
        victim = min(settled_workers(manager, 2))
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(2)
        server.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(2)
        server.proc.send_signal(signal.SIGHUP)
        await asyncio.gather(*writers)

    with serve(launcher("gunicorn"), tmp_path, WEB_CONCURRENCY="2", DATABASE_URL=database) as gun:
        asyncio.run(load(gun))
        gun.proc.send_signal(signal.SIGTERM)
        assert gun.proc.wait(timeout=30) == 0
    assert len(acknowledged) > 200, "the writers really wrote"

    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="2", DATABASE_URL=database) as uvi:
        stored: dict[int, object] = {}
        offset = 0
        while page := httpx.get(uvi.url + "/notes", params={"limit": 100, "offset": offset}).json():
            stored |= {note["id"]: note for note in page}
            offset += len(page)
    missing = [note for id_, note in acknowledged.items() if stored.get(id_) != note]
    assert missing == [], f"{len(missing)} acknowledged notes lost or changed"
    # Requests cut by the SIGKILL may have been written without an answer; no more than those.
    assert len(acknowledged) <= len(stored) <= len(acknowledged) + failed


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """`alembic check` after `make migrate`: the tables the migrations make are the models'."""
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/check.db")
    for argv in (
        [sys.executable, "-m", "launchers.migrate"],
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "check"],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected." in result.stdout


def test_launchers_starting_at_once_migrate_once(postgresql: str, tmp_path: Path) -> None:
    """Replicas and their init containers start together on one PostgreSQL: every one
    succeeds, and one applies the migrations."""
    env = clean_env(DATABASE_URL=postgresql)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "launchers.migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1
