"""Launchers: each module translates one `Settings` into one server's native command.

A launcher module has the shape of `launchers.command.Launcher`. This registry is the only place
that knows them all: adding a launcher is one module and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from launchers.command import Launcher

LAUNCHERS = {
    "uvicorn": "launchers.uvicorn",
    "gunicorn": "launchers.gunicorn",
    "fastapi-cli": "launchers.fastapi_cli",
    "granian": "launchers.granian",
    "gunicorn-asgi": "launchers.gunicorn.asgi",
}

ALIASES = {"fastapi": "fastapi-cli"}


def load(name: str) -> Launcher:
    return cast("Launcher", importlib.import_module(LAUNCHERS[name]))
