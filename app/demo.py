"""Endpoints that make worker behaviour visible under load; `DEMO_ENDPOINTS=false` removes them."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

router = APIRouter(prefix="/demo", tags=["demo"])
log = structlog.get_logger(__name__)

MAX_SLEEP_SECONDS = 30.0
MAX_CPU_MS = 2000
MAX_BLOCK_SECONDS = 120.0


class Text(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Echo(BaseModel):
    pid: int
    length: int


class Timing(BaseModel):
    pid: int
    elapsed_ms: float


@router.get("/sleep")
async def sleep(
    seconds: Annotated[float, Query(ge=0, le=MAX_SLEEP_SECONDS)] = 1.0,
) -> Timing:
    """Wait without blocking: one worker serves many of these at once."""
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    return Timing(pid=os.getpid(), elapsed_ms=(time.perf_counter() - start) * 1000)


@router.get("/block")
async def block(
    seconds: Annotated[float, Query(ge=0, le=MAX_BLOCK_SECONDS)] = 1.0,
) -> Timing:
    """Block the event loop on purpose (a sync call in async code, the classic bug): the worker
    answers nothing meanwhile, and after WORKER_TIMEOUT its manager kills and replaces it."""
    log.warning("blocking the event loop on purpose", seconds=seconds)
    start = time.perf_counter()
    time.sleep(seconds)
    return Timing(pid=os.getpid(), elapsed_ms=(time.perf_counter() - start) * 1000)


@router.get("/cpu")
async def cpu(ms: Annotated[int, Query(ge=1, le=MAX_CPU_MS)] = 50) -> Timing:
    """Burn CPU on the event loop on purpose: a worker serves one of these at a time, so
    throughput grows with workers only up to the number of CPUs."""
    start = time.perf_counter()
    deadline = start + ms / 1000
    while time.perf_counter() < deadline:
        sum(range(1000))
    return Timing(pid=os.getpid(), elapsed_ms=(time.perf_counter() - start) * 1000)


@router.post("/echo")
async def echo(body: Text) -> Echo:
    """Read and validate a JSON body: shows MAX_BODY_SIZE (413) and validation (422) at work."""
    return Echo(pid=os.getpid(), length=len(body.text))
