"""`/info`: which process answered, and how it is being served."""

from __future__ import annotations

import os
import platform
from typing import Any

import fastapi
import uvicorn
from fastapi import APIRouter, Request
from pydantic import BaseModel

from launchers.settings import Settings

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
    # The modules' own versions: importlib.metadata scans every installed distribution, at
    # every worker's start (docs/performance.md).
    found = {"python": platform.python_version(), "fastapi": fastapi.__version__}
    found["uvicorn"] = uvicorn.__version__
    if launcher == "gunicorn":
        import gunicorn  # imported already: it runs this worker

        found["gunicorn"] = gunicorn.__version__
    elif launcher == "granian":
        import granian

        found["granian"] = granian.__version__
    return found


def build_info(settings: Settings) -> dict[str, Any]:
    """What a worker answers on every request, built and checked once: its pid is fixed for the
    life of the process."""
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
    ).model_dump()


# A dictionary in, validated and serialised by pydantic as `Info` on the way out, with the
# request's client and the app's state each read once: FastAPI would dump a returned model to a
# dictionary first, which costs more than the model's idiom saves (docs/performance.md).
@router.get("/info", response_model=Info)
async def info(request: Request) -> dict[str, Any]:
    state = request.app.state
    client = request.client
    return {
        **state.info,
        "in_flight": state.in_flight.value,
        "client": client.host if client else None,
    }
