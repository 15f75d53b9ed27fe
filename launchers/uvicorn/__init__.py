"""uvicorn's own multiprocess manager: a parent process that spawns fresh interpreters.

Spawn means every worker imports the app from scratch: nothing is shared with the parent, so
start-up costs one full import per worker and no memory is shared copy-on-write.

The translation is to `uvicorn.Config` arguments, run by `launchers.uvicorn` with our
protocol (drain without resets, header limits) and supervisor (stuck event loops replaced).
`server_options()` is the part every uvicorn server needs whoever manages it: the gunicorn
launcher's worker uses it too. `plain()` is the same `config()` as `uvicorn APP --flags`, with
uvicorn's own protocol and manager.
"""

from __future__ import annotations

import sys
from typing import Any

from launchers import logs
from launchers.command import METRICS, Command, Plain, call, click_flags, losses
from launchers.settings import Settings
from launchers.uvicorn.limits import Limits

OPTIONS = {
    "host": "host",
    "port": "port",
    "web_concurrency": "workers",
    "reload": "reload",
    "log_level": "log_level",
    "log_format": "log_config",
    "backlog": "backlog",
    "max_requests": "limit_max_requests",
    "max_requests_jitter": "limit_max_requests_jitter",
    "tls_certfile": "ssl_certfile",
    "tls_keyfile": "ssl_keyfile",
    "keep_alive_timeout": "timeout_keep_alive",
    "graceful_timeout": "timeout_graceful_shutdown",
    "proxy_headers": "proxy_headers",
    "forwarded_allow_ips": "forwarded_allow_ips",
    "root_path": "root_path",
    "max_connections": "limit_concurrency",
    "server_header": "server_header",
    # zttp is young: httptools stays the default protocol and HTTP/2 is opt-in.
    "http2": "http (our zttp protocol)",
    "max_header_size": "limits (our protocol)",
    "header_timeout": "limits (our protocol)",
    "body_timeout": "limits (our protocol)",
    "worker_timeout": "limits (our supervisor)",
}

REFUSED: frozenset[str] = frozenset()
# Spawned workers import the app themselves: there is nothing to preload.
IGNORED: dict[str, object] = {"preload": False}


def notes(settings: Settings) -> list[str]:
    """What `HTTP2=true` gives up, under this launcher and gunicorn's (same worker protocol)."""
    if not settings.http2:
        return []
    return [
        "HTTP2=true serves through zttp, which applies neither MAX_HEADER_SIZE, HEADER_TIMEOUT "
        "nor BODY_TIMEOUT, nor the RFC 9112 framing checks, and counts idle connections "
        "against MAX_CONNECTIONS."
    ]


# Our protocol classes, by HTTP2: each refines the one uvicorn's own options below would load.
PROTOCOLS: dict[bool, tuple[str, dict[str, Any]]] = {
    False: ("launchers.uvicorn.protocol:HttpToolsProtocol", {"http": "httptools"}),
    True: ("launchers.uvicorn.zttp:AutoZttpProtocol", {"http": "zttp", "http2": True}),
}
DRAIN = "drain without connection resets"


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config arguments for one server (worker), whichever process manager runs it."""
    return {
        # zttp serves HTTP/2 and HTTP/1.1 with our drain, not our limits; uvicorn's `http2=True`
        # would load its own dispatcher in place of ours, which offers h2 through ALPN too.
        "http": PROTOCOLS[settings.http2][0],
        "http2": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "proxy_headers": settings.proxy_headers,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "root_path": settings.root_path,
        "limit_concurrency": settings.max_connections,
        "server_header": settings.server_header,
        # Our logging everywhere, and the kit's access log instead of uvicorn's.
        "log_config": logs.dict_config(settings),
        "access_log": False,
        "limits": Limits(
            max_header_size=settings.max_header_size,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            worker_timeout=settings.worker_timeout,
        ),
    }


def config(settings: Settings) -> dict[str, Any]:
    """Arguments of `launchers.uvicorn.limits.Config` (uvicorn's Config) for this launcher."""
    return {
        "app": settings.app,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.web_concurrency,
        "reload": settings.reload,
        "log_level": settings.log_level,
        "backlog": settings.backlog,
        "limit_max_requests": settings.max_requests or None,
        "limit_max_requests_jitter": settings.max_requests_jitter,
        "ssl_certfile": settings.tls_certfile,
        "ssl_keyfile": settings.tls_keyfile,
        **server_options(settings),
    }


def command(settings: Settings) -> Command:
    return Command(
        [sys.executable, "-m", "launchers.uvicorn"],
        config="# launchers/uvicorn/__main__.py runs:\n" + call("Config", config(settings)),
    )


def plain(settings: Settings) -> Plain:
    """`uvicorn APP --flags`: `config()` with uvicorn's own protocol, through its CLI."""
    from uvicorn.main import main as cli  # the flags it declares; imported for `--print` only

    options = config(settings) | PROTOCOLS[settings.http2][1]
    argv, unflagged = click_flags(cli, options)
    described = {
        "limits": "WORKER_TIMEOUT (a stuck event loop replaced)",
        "log_config": "LOG_FORMAT on lines logged before the app is imported (all a manager's)",
    }
    lost = protocol_losses(settings)
    if not settings.http2:  # zttp counts idle connections, under ours too (`notes()`)
        lost.append("MAX_CONNECTIONS counting requests, not idle connections")
    lost += losses(unflagged, described)
    if (settings.web_concurrency or 1) > 1:
        lost += ["SIGQUIT stopping every worker at once", METRICS]
    elif not settings.reload:
        lost.append("SIGHUP and MAX_REQUESTS restarting the one process in place (it exits)")
    return Plain(["uvicorn", *argv], lost)


def protocol_losses(settings: Settings) -> list[str]:
    """What uvicorn's own protocol lacks of ours: the httptools one, or zttp for HTTP2."""
    if settings.http2:
        return [DRAIN]  # our zttp adds the drain alone
    return [
        DRAIN,
        "MAX_HEADER_SIZE, HEADER_TIMEOUT and BODY_TIMEOUT",
        "the RFC 9112 framing checks",
    ]
