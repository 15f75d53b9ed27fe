"""Checks made before a server starts, so that its failures read as plain sentences."""

from __future__ import annotations

import errno
import socket

from app.settings import Settings
from launchers.command import Launcher
from launchers.errors import ConfigError

# Read by the launcher or by the app in each worker, never passed to a server.
NOT_SERVER_OPTIONS = frozenset({"launcher", "max_workers", "demo_endpoints"})


def unsupported(name: str, launcher: Launcher, settings: Settings) -> list[str]:
    """Warnings for settings this launcher cannot express; ConfigError for those it refuses."""
    ignored = []
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if field in NOT_SERVER_OPTIONS or field in launcher.OPTIONS or value is None:
            continue
        if field in launcher.REFUSED:
            raise ConfigError(
                f"{name} cannot honour {field.upper()}={value!r}: it has no option for it, and "
                f"starting without it would be wrong. Unset {field.upper()} or choose a launcher "
                "that supports it."
            )
        ignored.append(f"{field.upper()}={value!r}")
    if not ignored:
        return []
    return [
        f"{name} has no option for {', '.join(ignored)}: the server's own defaults apply "
        "instead. Use the uvicorn or gunicorn launcher to honour them."
    ]


def check_port(settings: Settings) -> None:
    """Bind the address once, as the server will, to report a busy port by name."""
    host, port = settings.host, settings.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        problem = f"HOST={host!r} is not an address to listen on ({error.strerror})."
        raise ConfigError(problem) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            raise ConfigError(_bind_problem(host, port, error)) from None


def _bind_problem(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"PORT={port}: {host}:{port} is already in use by another process. Stop that "
            "process or set PORT to a free port."
        )
    if error.errno == errno.EACCES:
        return f"PORT={port}: binding ports below 1024 needs privileges. Use PORT=8000 or above."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"HOST={host!r} is not an address of this machine, so nothing can listen on it."
    return f"cannot listen on HOST={host!r} PORT={port}: {error.strerror}."
