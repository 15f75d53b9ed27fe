"""One logging configuration for every logger of every process: the app's, uvicorn's, gunicorn's.

Servers and app log through the standard library; structlog's `ProcessorFormatter` renders every
record the same way, JSON or console, with time, level, logger, pid, and the request id of the
request being served (`REQUEST_ID`, a context variable the access-log middleware sets). The same
dictionary configures uvicorn's manager (`log_config`), gunicorn's master (`logconfig_dict`) and
each worker.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import logging.config
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

# structlog imports rich, when it is installed (fastapi-cli brings it), to render exceptions on a
# console; our renderers do without, and that import is slow (docs/performance.md). So rich is
# hidden from that one import (an import of None fails), and only from it.
if "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from launchers.pid import pid
from launchers.settings import Settings

# The id of the request being served, in the task serving it. One variable of our own rather
# than structlog's bound context variables: those cost a copy of the whole context per request.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

ACCESS = "app.access"  # the access log's logger name
AccessLine = Callable[[dict[str, Any]], None]  # logs one request's fields


def _pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["pid"] = pid()
    return event


def _request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event["request_id"] = request_id
    return event


# The access log's processors: it names its logger itself (it has no standard library one).
DIRECT: list[Processor] = [
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _pid,
    _request_id,
]
# Every other line, whether it comes from structlog or from a standard library logger; with
# whatever the app binds with `structlog.contextvars.bind_contextvars`.
SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    *DIRECT,
]


def _dumps(event: EventDict, **kwargs: Any) -> str:
    return orjson.dumps(event, **kwargs).decode()


def _rendering(json: bool) -> list[Processor]:
    if json:
        return [
            # Without the frames' local variables: they hold request headers (cookies,
            # tokens) and query parameters.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
    return [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]


def _text_lines(lines: list[str]) -> str:
    return "".join([f"{line}\n" for line in lines])


class PerTurnWriter:
    """The access log's output: the lines logged during one turn of the event loop are rendered
    and written together as it ends, in one system call instead of one per request. Outside a
    running loop a line is written at once; what is pending is written at shutdown. A worker
    killed outright (SIGKILL) loses the lines of its last turn, at most a few milliseconds' worth.

    `render` turns the turn's items (lines, or events for `json_lines`) into the text written.
    """

    def __init__(self, stream: TextIO, render: Callable[[list[Any]], str] = _text_lines) -> None:
        self._stream = stream
        self._render = render
        self._pending: list[Any] = []
        atexit.register(self.flush)

    def msg(self, item: Any) -> None:
        self._pending.append(item)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    debug = info = warning = error = critical = exception = msg

    def flush(self) -> None:
        if self._pending:
            text = self._render(self._pending)
            self._pending.clear()
            self._stream.write(text)
            self._stream.flush()


# orjson writes a datetime as structlog's TimeStamper does (ISO 8601, with Z for UTC).
_json_line = functools.partial(orjson.dumps, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def json_lines(events: list[dict[str, Any]]) -> str:
    # One pass of orjson over the turn's events, rather than one call as each is logged, when
    # its code and data have gone cold since the last request.
    return b"".join(map(_json_line, events)).decode()


def formatter(json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the one handler; named in the dictionary below by its import path."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_rendering(json)],
    )


def access_logger(settings: Settings) -> AccessLine:
    """The access log: a request's fields in, one line out, in the same rendering as every other
    line, written straight to stdout a turn of the event loop at a time. It runs once per request,
    so neither the standard library's logger, record and handler nor structlog's processor chain
    (docs/performance.md): the line is made here from the one dictionary, with the keys and values
    structlog's chain (`DIRECT`, then JSON) gives every other line, and rendered by orjson with
    the rest of its turn's lines (`json_lines`)."""
    if logging.getLevelNamesMapping()[settings.log_level.upper()] > logging.INFO:
        return _unlogged
    if settings.log_format == "json":
        events = PerTurnWriter(sys.stdout, json_lines)

        def json_line(fields: dict[str, Any]) -> None:
            fields["event"] = "request"
            fields["level"] = "info"
            fields["logger"] = ACCESS
            fields["timestamp"] = datetime.now(UTC)
            fields["pid"] = pid()
            if (request_id := REQUEST_ID.get()) is not None:
                fields["request_id"] = request_id
            events.msg(fields)

        return json_line
    console = structlog.wrap_logger(
        PerTurnWriter(sys.stdout),
        processors=[*DIRECT, *_rendering(json=False)],
        cache_logger_on_first_use=True,
    ).bind(logger=ACCESS)

    def console_line(fields: dict[str, Any]) -> None:
        console.info("request", **fields)

    return console_line


def _unlogged(fields: dict[str, Any]) -> None:
    pass


def dict_config(settings: Settings) -> dict[str, Any]:
    level = settings.log_level.upper()
    # Each logger hands its records to the root's one handler. The servers' access logs are
    # silenced: the app's access log (app.access) replaces them, so each request is logged once.
    own = {"handlers": [], "propagate": True, "level": level}
    silenced = {"handlers": [], "propagate": False, "level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {"()": f"{__name__}.formatter", "json": settings.log_format == "json"}
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": own,
            "uvicorn.error": own,
            "uvicorn.asgi": own,
            "gunicorn.error": own,
            "uvicorn.access": silenced,
            "gunicorn.access": silenced,
        },
    }


def configure(settings: Settings) -> None:
    """Apply the configuration in this process; idempotent."""
    logging.config.dictConfig(dict_config(settings))
    logging.captureWarnings(True)  # warnings become log lines too, not stray stderr text
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # first: a dropped line costs nothing more
            *SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
