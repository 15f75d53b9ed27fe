"""gunicorn's own ASGI worker (`-k asgi`): gunicorn's master, and gunicorn's HTTP in its workers.

The gunicorn launcher's translation (`launchers.gunicorn.config`: bind, workers, timeouts,
recycling, preload, logging, the hooks that share the metrics directory), with gunicorn's worker
in place of uvicorn's. No uvicorn underneath, so none of our protocol's guards either: IGNORED
says what the worker does without them. Its plain command (`plain()`) loses only our hooks.
"""

from __future__ import annotations

from typing import Any

from launchers import gunicorn, held_stops
from launchers.command import Command, Plain, losses
from launchers.installed import warn_if_lacking
from launchers.settings import Settings

REFUSED: frozenset[str] = frozenset()

# What gunicorn's worker does without them (measured against gunicorn 27.0).
IGNORED: dict[str, object] = {
    "max_connections": None,  # it never reads worker_connections: no 503, no limit
    # its own limits instead: a request line of 4094 bytes, 100 header lines of 8190 bytes each
    "max_header_size": None,
    # no deadline for a connection's first request, whose headers may trickle or never come;
    # later ones have KEEP_ALIVE_TIMEOUT
    "header_timeout": None,
    # a body that stalls for WORKER_TIMEOUT reaches the app as a disconnect (FastAPI answers
    # 400, not 408); a trickle is waited for without end
    "body_timeout": None,
    "server_header": True,  # `Server: gunicorn/asgi`
}

# The gunicorn launcher's options, less those; its HTTP/2 is gunicorn's own, not our zttp.
OPTIONS = {name: option for name, option in gunicorn.OPTIONS.items() if name not in IGNORED}
OPTIONS["http2"] = "http_protocols"


def notes(settings: Settings) -> list[str]:
    if not settings.proxy_headers:
        return []
    return [
        "gunicorn's asgi worker takes only the scheme (X-Forwarded-Proto) from the proxies in "
        "FORWARDED_ALLOW_IPS: the client address stays the proxy's, X-Forwarded-For is not read."
    ]


def config(settings: Settings) -> dict[str, Any]:
    """gunicorn's settings: the gunicorn launcher's, for gunicorn's ASGI worker."""
    result = gunicorn.config(settings)
    # What only uvicorn-worker reads: this worker has no connection limit, and makes its own TLS.
    for unread in ("worker_connections", "ssl_version"):
        result.pop(unread, None)
    return result | {
        "worker_class": "asgi",
        # HTTP/2 over TLS through ALPN; in cleartext only to the proxies in FORWARDED_ALLOW_IPS
        # (prior knowledge or upgrade), which may still speak HTTP/1.1.
        "http_protocols": "h2,h1" if settings.http2 else "h1",
        "http2_cleartext": "both" if settings.http2 and not settings.tls else "off",
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
    }


def command(settings: Settings) -> Command:
    return gunicorn.conf_command(config(settings), settings)


def plain(settings: Settings) -> Plain:
    """`gunicorn --worker-class asgi --flags APP`: `config()` as its flags, less our hooks."""
    argv, unflagged = gunicorn.flags(config(settings))
    held = "a stop signal sent while a worker imports the app (held until its loop runs)"
    described = gunicorn.hook_losses(settings) | {"post_fork": held, "post_worker_init": held}
    return Plain(["gunicorn", *argv], losses(unflagged, described))


def post_fork(arbiter: Any, worker: Any) -> None:
    held_stops.hold()


def post_worker_init(worker: Any) -> None:
    warn_if_lacking(worker.cfg.wsgi_app)
    worker.loop.call_soon(held_stops.release)  # once its loop runs, and hears them
