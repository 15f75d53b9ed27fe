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
from functools import partial
from pathlib import Path

import httpx
import pytest

from app.models import MAX_ID
from tests.databases import empty
from tests.servers import (
    ROOT,
    SAMPLE_APP,
    Server,
    clean_env,
    launcher,
    replaced,
    serve,
    settled_workers,
    until,
    wait_for,
    workers,
)

FRESH = {"Connection": "close"}


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    empty(database)
    workdir = tmp_path_factory.mktemp("notes")
    with serve(
        launcher("uvicorn"), workdir, APP=SAMPLE_APP, WEB_CONCURRENCY="1", DATABASE_URL=database
    ) as s:
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
    a JSON escape can make and UTF-8 cannot encode, is refused too (in a 422 the kit makes safe
    to send: `tests/test_features.py`)."""
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
        APP=SAMPLE_APP,
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        DATABASE_URL=database,
        PRELOAD=preload,
    ) as server:
        note = post(server.url, {"text": "seen by every worker"}).json()

        def read_on_both() -> bool:
            # A fresh connection goes to whichever worker accepts it first, and the second
            # worker may still be starting: read until the access log shows both answered.
            read = httpx.get(f"{server.url}/notes/{note['id']}", headers=FRESH)
            assert (read.status_code, read.json()) == (200, note)
            readers = {
                entry["pid"]
                for entry in map(json.loads, server.output().splitlines())
                if entry.get("route") == "/notes/{note_id}"
            }
            return len(readers) == 2

        wait_for(read_on_both, 20, "reads on both workers")


@pytest.mark.timeout(120)
def test_no_acknowledged_note_is_lost(database: str, tmp_path: Path) -> None:
    """Writers run through gunicorn while a worker is killed and the manager reloads twice; the
    server stops, the uvicorn launcher starts on the same database: every 201 reads back."""
    empty(database)
    acknowledged: dict[int, dict[str, object]] = {}
    failed = 0

    async def writer(url: str, number: int, stop: asyncio.Event) -> None:
        nonlocal failed
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
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

    async def more_written() -> None:
        written = len(acknowledged)
        await until(lambda: len(acknowledged) > written + 60, 30, "notes written")

    async def load(server: Server) -> None:
        stop = asyncio.Event()
        writers = [asyncio.ensure_future(writer(server.url, n, stop)) for n in range(4)]
        manager = server.proc.pid
        await more_written()
        victim = min(await asyncio.to_thread(settled_workers, manager, 2))
        os.kill(victim, signal.SIGKILL)
        gone = partial(wait_for, lambda: victim not in workers(manager), 20, "the victim gone")
        await asyncio.to_thread(gone)
        generation = await asyncio.to_thread(settled_workers, manager, 2)
        await more_written()
        for _ in range(2):
            server.proc.send_signal(signal.SIGHUP)
            generation = await asyncio.to_thread(replaced, manager, generation)
            await more_written()
        stop.set()
        await asyncio.gather(*writers)

    with serve(
        launcher("gunicorn"), tmp_path, APP=SAMPLE_APP, WEB_CONCURRENCY="2", DATABASE_URL=database
    ) as gun:
        asyncio.run(load(gun))
        gun.proc.send_signal(signal.SIGTERM)
        assert gun.proc.wait(timeout=30) == 0
    assert len(acknowledged) > 200, "the writers really wrote"

    with serve(
        launcher("uvicorn"), tmp_path, APP=SAMPLE_APP, WEB_CONCURRENCY="2", DATABASE_URL=database
    ) as uvi:
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
