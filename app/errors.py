"""FastAPI's answer to invalid requests, made safe for every input a client can send."""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError


async def invalid(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's own 422, its body escaped to ASCII: JSON can carry a lone surrogate (`"\\ud800"`),
    which the error echoes back as its input and which UTF-8 cannot encode (a 500 otherwise)."""
    body = json.dumps({"detail": jsonable_encoder(error.errors())}, separators=(",", ":"))
    return Response(body, status_code=422, media_type="application/json")
