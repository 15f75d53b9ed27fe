"""uvicorn's own multiprocess manager: a parent process that spawns fresh interpreters.

Spawn means every worker imports the app from scratch: nothing is shared with the parent, so
start-up costs one full import per worker and no memory is shared copy-on-write.
"""

from __future__ import annotations

import sys

from app.settings import Settings
from launchers import APP
from launchers.command import Command, cli_options

OPTIONS = {
    "host": "--host",
    "port": "--port",
    "web_concurrency": "--workers",
    "reload": "--reload",
    "log_level": "--log-level",
    "keep_alive_timeout": "--timeout-keep-alive",
    "graceful_timeout": "--timeout-graceful-shutdown",
    "proxy_headers": "--proxy-headers/--no-proxy-headers",
    "forwarded_allow_ips": "--forwarded-allow-ips",
    "root_path": "--root-path",
    "tls_certfile": "--ssl-certfile",
    "tls_keyfile": "--ssl-keyfile",
    # zttp is young: httptools stays the default protocol and HTTP/2 is opt-in.
    "http2": "--http zttp --http2",
}

REFUSED: frozenset[str] = frozenset()
IGNORED: dict[str, object] = {}


def command(settings: Settings) -> Command:
    return Command([sys.executable, "-m", "uvicorn", APP, *cli_options(settings, OPTIONS)])
