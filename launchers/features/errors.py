"""FastAPI's answer to invalid requests, made safe for every input a client can send."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError


def _text(raw: bytes) -> str:
    # A body that is not JSON (text/plain, a form, multipart) is echoed as its raw bytes, which
    # FastAPI's encoder decodes as strict UTF-8: a UnicodeDecodeError, a 500, otherwise.
    return raw.decode("utf-8", "backslashreplace")


def _number(value: float) -> float | str:
    # Python's JSON reads NaN and 1e400 (infinity), and would write them back as bare NaN and
    # Infinity, which no strict JSON parser accepts: spelt as strings instead.
    return value if math.isfinite(value) else json.dumps(value)


ENCODERS: dict[Any, Callable[[Any], Any]] = {bytes: _text, float: _number}


async def invalid(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's own 422, its body escaped to ASCII: JSON can carry a lone surrogate (`"\\ud800"`),
    which the error echoes back as its input and which UTF-8 cannot encode (a 500 otherwise)."""
    detail = jsonable_encoder(error.errors(), custom_encoder=ENCODERS)
    body = json.dumps({"detail": detail}, separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=422, media_type="application/json")
