"""A FastAPI app that never calls `launchers.features.install`: it must still serve under every
launcher, which warns once at start about what it lacks (`APP=tests.plainapp:app`)."""

from __future__ import annotations

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/info")
async def info() -> dict[str, int]:
    return {"pid": os.getpid()}
