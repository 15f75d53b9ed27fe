"""`fastapi run`: FastAPI's own command, which calls `uvicorn.run()` with a few options.

It is uvicorn underneath (spawn model with `--workers`), but exposes only host, port, workers,
reload, root path and proxy headers; and, because it calls `uvicorn.run()` rather than uvicorn's
CLI, `UVICORN_*` variables do not reach it. The entrypoint is passed explicitly: path discovery
would import the app once more in the parent process. Its plain command is the same one.
"""

from __future__ import annotations

import sys

from launchers.command import Command, Plain, cli_options
from launchers.settings import Settings

OPTIONS = {
    "host": "--host",
    "port": "--port",
    "web_concurrency": "--workers",
    "reload": "--reload/--no-reload",
    "proxy_headers": "--proxy-headers/--no-proxy-headers",
    "forwarded_allow_ips": "--forwarded-allow-ips",
    "root_path": "--root-path",
}

# Serving plain HTTP when HTTPS was asked for would be wrong, not merely different.
REFUSED = frozenset({"tls_certfile", "tls_keyfile"})

# What `uvicorn.run()` does when fastapi-cli does not pass an option.
IGNORED: dict[str, object] = {
    "log_level": "info",
    "log_format": "console",  # its own lines (banner, manager); the app's logging still applies
    "keep_alive_timeout": 5,
    "graceful_timeout": None,  # waits for in-flight requests without limit
    "http2": False,
    "backlog": 2048,
    "worker_timeout": None,  # a worker with a blocked event loop is never replaced
    "max_requests": 0,
    "max_requests_jitter": 0,
    "max_connections": None,
    "max_header_size": None,  # httptools accepts any size
    "header_timeout": None,
    "body_timeout": None,
    "server_header": True,
    "preload": False,
}


def notes(settings: Settings) -> list[str]:
    if (settings.web_concurrency or 1) > 1 and settings.prometheus_multiproc_dir is None:
        return [
            "fastapi-cli has no hook to give its workers a shared metrics directory: /metrics "
            "counts only the worker that answers each scrape. Set PROMETHEUS_MULTIPROC_DIR to a "
            "directory of yours (emptied at start), or use LAUNCHER=uvicorn."
        ]
    return []


def command(settings: Settings) -> Command:
    argv = [sys.executable, "-m", "fastapi", "run", "--entrypoint", settings.app]
    return Command(argv + cli_options(settings, OPTIONS))


def plain(settings: Settings) -> Plain:
    """`fastapi run ...`: the very same arguments; the launcher adds only what it does first."""
    _python, _dash_m, module, *args = command(settings).argv
    return Plain([module, *args], [], little=True)
