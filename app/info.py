"""`/info`: which process answered, and how it is being served."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.settings import Settings

router = APIRouter(tags=["info"])


class Info(BaseModel):
    pid: int
    ppid: int
    launcher: str
    workers: int | None
    tls: bool
    root_path: str
    versions: dict[str, str]


def _versions(launcher: str) -> dict[str, str]:
    names = ["fastapi", "uvicorn"] + (["gunicorn"] if launcher == "gunicorn" else [])
    return {"python": platform.python_version()} | {name: version(name) for name in names}


def build_info(settings: Settings) -> Info:
    # Built once per worker: the pid is fixed for the life of the process.
    return Info(
        pid=os.getpid(),
        ppid=os.getppid(),
        launcher=settings.launcher,
        workers=settings.web_concurrency,
        tls=settings.tls,
        root_path=settings.root_path,
        versions=_versions(settings.launcher),
    )


@router.get("/info")
async def info(request: Request) -> Info:
    result: Info = request.app.state.info
    return result
