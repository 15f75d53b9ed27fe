"""`/info`: which process answered, and how it is being served."""

from __future__ import annotations

import os
import platform

import fastapi
import uvicorn
from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.settings import Settings

router = APIRouter(tags=["info"])


class Info(BaseModel):
    pid: int
    in_flight: int  # requests this worker is handling, this one included
    client: str | None  # the client's address as the app sees it (after trusted proxy headers)
    ppid: int
    launcher: str
    workers: int | None
    tls: bool
    root_path: str
    versions: dict[str, str]


def _versions(launcher: str) -> dict[str, str]:
    # The modules' own versions: importlib.metadata scans every installed distribution, which
    # cost each worker 30 ms of its start-up.
    found = {"python": platform.python_version(), "fastapi": fastapi.__version__}
    found["uvicorn"] = uvicorn.__version__
    if launcher == "gunicorn":
        import gunicorn  # imported already: it runs this worker

        found["gunicorn"] = gunicorn.__version__
    return found


def build_info(settings: Settings) -> Info:
    # Built once per worker: the pid is fixed for the life of the process.
    return Info(
        pid=os.getpid(),
        in_flight=0,
        client=None,
        ppid=os.getppid(),
        launcher=settings.launcher,
        workers=settings.web_concurrency,
        tls=settings.tls,
        root_path=settings.root_path,
        versions=_versions(settings.launcher),
    )


@router.get("/info")
async def info(request: Request) -> Info:
    static: Info = request.app.state.info
    client = request.client.host if request.client else None
    return static.model_copy(
        update={"in_flight": request.app.state.in_flight.value, "client": client}
    )
