"""granian: a server written in Rust that runs the ASGI app in Python worker processes.

Each worker imports the app, as under uvicorn's manager (forked, or spawned from Python 3.14), but
its sockets, HTTP parsing and TLS (rustls) run on a Rust thread beside the Python one, outside the
GIL: a worker can keep more than one CPU busy.
The translation is to `granian.Granian` arguments, run by `launchers.granian`: granian's CLI
takes its logging configuration only as a file, and the metrics directory has to outlive its
workers. Little else: `plain()`, the same arguments as granian's own flags, loses little.
"""

from __future__ import annotations

import sys
from typing import Any

from launchers import logs
from launchers.command import METRICS, Command, Plain, call, click_flags, losses
from launchers.settings import Settings

OPTIONS = {
    "host": "address",
    "port": "port",
    "web_concurrency": "workers",
    "reload": "reload",
    "log_level": "log_level",
    "log_format": "log_dictconfig",
    "backlog": "backlog",
    "graceful_timeout": "workers_kill_timeout",
    "header_timeout": "http1_settings.header_read_timeout",
    "root_path": "url_path_prefix",
    "tls_certfile": "ssl_cert",
    "tls_keyfile": "ssl_key",
    "http2": "http",
}

REFUSED: frozenset[str] = frozenset()

# What granian does without them (measured against granian 2.8).
IGNORED: dict[str, object] = {
    # hyper's header deadline also bounds the wait for a connection's next request
    "keep_alive_timeout": "HEADER_TIMEOUT",
    "worker_timeout": None,  # a dead worker is replaced, one with a blocked event loop is not
    "preload": False,
    "max_requests": 0,  # it replaces workers by age (workers_lifetime), not by requests served
    "max_requests_jitter": 0,
    "max_connections": None,  # `backpressure` bounds requests in progress by queueing, not 503
    "max_header_size": None,  # 500 kB of headers were served
    "body_timeout": None,  # no option: a body that stalls or trickles is waited for without end
    "server_header": True,  # `Server: granian`
    "proxy_headers": False,  # the client is the peer address, whatever a proxy says
    "forwarded_allow_ips": None,
}


def notes(settings: Settings) -> list[str]:
    return []


def config(settings: Settings) -> dict[str, Any]:
    """Arguments of `granian.Granian` (plain values: `launchers.granian` makes the enums and
    imports the filter)."""
    return {
        "target": settings.app,
        "interface": "asgi",
        "address": settings.host,
        "port": settings.port,
        "workers": settings.web_concurrency or 1,
        "reload": settings.reload,
        # As uvicorn's reloader: Python files only, not the log or the SQLite file a request writes.
        "reload_filter": "watchfiles.PythonFilter",
        "log_level": settings.log_level,
        # Our logging everywhere, and the app's access log instead of granian's (off by default).
        "log_dictconfig": logs.dict_config(settings),
        "backlog": settings.backlog,
        "workers_kill_timeout": settings.graceful_timeout,
        "http1_settings": {"header_read_timeout": max(1, round(settings.header_timeout * 1000))},
        "url_path_prefix": settings.root_path or None,
        "ssl_cert": settings.tls_certfile,
        "ssl_key": settings.tls_keyfile,
        "http": "auto" if settings.http2 else "1",
        # uvicorn's and gunicorn's managers replace a worker that dies; granian's only when asked.
        "respawn_failed_workers": True,
    }


def command(settings: Settings) -> Command:
    return Command(
        [sys.executable, "-m", "launchers.granian"],
        config="# launchers/granian/__main__.py runs:\n" + call("Granian", config(settings)),
    )


# `granian.Granian` arguments that granian's CLI names otherwise (granian/cli.py).
CLI_NAMES = {
    "target": "app",
    "address": "host",
    "ssl_cert": "ssl_certificate",
    "ssl_key": "ssl_keyfile",
}


def plain(settings: Settings) -> Plain:
    """`granian --interface asgi --flags APP`: `config()` through granian's CLI."""
    from granian.cli import cli  # the flags it declares; imported for `--print` only

    options: dict[str, Any] = {}
    for name, value in config(settings).items():
        if name.endswith("_settings"):  # `http1_settings={"x": 1}` is `--http1-x 1`
            prefix = name.removesuffix("_settings")
            options |= {f"{prefix}_{key}": item for key, item in value.items()}
        else:
            options[CLI_NAMES.get(name, name)] = value
    argv, unflagged = click_flags(cli, options)
    described = {
        "log_dictconfig": "LOG_FORMAT on granian's own lines",
        "reload_filter": "RELOAD watching Python files only" if settings.reload else None,
    }
    lost = losses(unflagged, described)
    if (settings.web_concurrency or 1) > 1:
        lost.append(METRICS)
    lost.append("SIGTTIN and SIGTTOU ignored (they suspend granian's manager)")
    lost.append("a stop signal sent while a worker starts (held until it can act on it)")
    return Plain(["granian", *argv], lost, little=True)
