"""The reference points: a bare FastAPI app (the goal's baseline) and a raw ASGI app (the ceiling).

Both answer `GET /info` with a small JSON document like the kit's test app's, pid included, so
the bench can tell workers apart.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

bare = FastAPI()


@bare.get("/info")
async def info() -> dict[str, Any]:
    return {"pid": os.getpid(), "launcher": "bare", "workers": 1, "tls": False}


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"pid": os.getpid(), "launcher": "raw", "workers": 1, "tls": False})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
