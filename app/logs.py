"""One logging configuration for every logger of every process: the app's, uvicorn's, gunicorn's.

Servers and app log through the standard library; structlog's `ProcessorFormatter` renders every
record the same way, JSON or console, with time, level, logger, pid, and the request id of the
request being served (a context variable, set by the access-log middleware). The same dictionary
configures uvicorn's manager (`log_config`), gunicorn's master (`logconfig_dict`) and each worker.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.pid import pid
from app.settings import Settings


def _pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["pid"] = pid()
    return event


# Run for every line, whether it comes from structlog or from a standard library logger.
SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _pid,
]
# The same for the access log, which names its logger itself (it has no standard library one).
DIRECT = [processor for processor in SHARED if processor is not structlog.stdlib.add_logger_name]


def _rendering(json: bool) -> list[Processor]:
    if json:
        return [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    return [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]


def formatter(json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the one handler; named in the dictionary below by its import path."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_rendering(json)],
    )


def access_logger(settings: Settings) -> Any:
    """The access log's logger: the same processors and rendering as every other line, written
    straight to stdout. It runs once per request, and going through the standard library's
    logger, record and handler cost a quarter of a worker's throughput on a small endpoint."""
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    return structlog.wrap_logger(
        structlog.WriteLogger(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[*DIRECT, *_rendering(settings.log_format == "json")],
        cache_logger_on_first_use=True,
    ).bind(logger="app.access")


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
