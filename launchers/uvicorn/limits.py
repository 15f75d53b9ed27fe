"""uvicorn's `Config`, carrying the limits that our protocol and supervisor enforce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uvicorn

from launchers.installed import warn_if_lacking


@dataclass(frozen=True)
class Limits:
    max_header_size: int = 16 * 1024  # request line and headers, in bytes
    header_timeout: float = 10.0  # seconds from a request's first byte to its last header
    body_timeout: float = 30.0  # seconds a request's body may go unsent (see the protocol)
    worker_timeout: float = 30.0  # seconds a worker's event loop may go without a heartbeat


class Config(uvicorn.Config):
    def __init__(self, app: Any, *, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits or Limits()

    def load(self) -> None:
        super().load()
        if isinstance(self.app, str):
            warn_if_lacking(self.app)


def limits_of(config: uvicorn.Config) -> Limits:
    """The limits of any Config: ours, or a stock one given them (gunicorn's worker)."""
    limits = getattr(config, "limits", None)
    return limits if isinstance(limits, Limits) else Limits()
