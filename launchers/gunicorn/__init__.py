"""gunicorn pre-fork: a master process that forks workers running uvicorn's server.

Fork means workers start as copies of the master, cheaply; the master also restarts dead or
stuck workers (its `timeout` heartbeat comes from each worker's event loop). gunicorn reads its
configuration from `launchers.gunicorn.conf`, which applies `config()` below, so the printed
configuration and the running one are the same translation.
"""

from __future__ import annotations

import ssl
import sys
from types import FunctionType
from typing import Any

from launchers import logs, uvicorn
from launchers.command import Command
from launchers.gunicorn import hooks
from launchers.settings import Settings

OPTIONS = {
    "host": "bind",
    "port": "bind",
    "web_concurrency": "workers",
    "reload": "reload",
    "log_level": "loglevel",
    "log_format": "logconfig_dict",
    "backlog": "backlog",
    "worker_timeout": "timeout",
    "preload": "preload_app",
    "max_requests": "max_requests",
    "max_requests_jitter": "max_requests_jitter",
    "max_connections": "worker_connections",
    "keep_alive_timeout": "keepalive",
    "graceful_timeout": "graceful_timeout",
    "proxy_headers": "forwarded_allow_ips",
    "forwarded_allow_ips": "forwarded_allow_ips",
    "root_path": "root_path",
    "tls_certfile": "certfile",
    "tls_keyfile": "keyfile",
    # What gunicorn has no setting for reaches uvicorn through our worker class.
    "server_header": "worker: server_header",
    "max_header_size": "worker: limits",
    "header_timeout": "worker: limits",
    "body_timeout": "worker: limits",
    "http2": "worker: http (our zttp protocol)",
}

REFUSED: frozenset[str] = frozenset()
IGNORED: dict[str, object] = {}


def notes(settings: Settings) -> list[str]:
    return uvicorn.notes(settings)  # its workers run uvicorn's server


WORKER = "launchers.gunicorn.worker.UvicornWorker"


def config(settings: Settings) -> dict[str, Any]:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    result: dict[str, Any] = {
        "wsgi_app": settings.app,
        "worker_class": WORKER,
        "bind": [f"{host}:{settings.port}"],
        "workers": settings.web_concurrency,
        "reload": settings.reload,
        "loglevel": settings.log_level,
        "backlog": settings.backlog,
        "timeout": settings.worker_timeout,
        "preload_app": settings.preload,
        "max_requests": settings.max_requests,
        "max_requests_jitter": settings.max_requests_jitter,
        "worker_connections": settings.max_connections,
        "errorlog": "-",
        # gunicorn's access log is off (its format is ignored under uvicorn's worker anyway):
        # the app's access log replaces it. logconfig_dict formats gunicorn's own lines.
        "accesslog": None,
        "logconfig_dict": logs.dict_config(settings),
        "keepalive": settings.keep_alive_timeout,
        "graceful_timeout": settings.graceful_timeout,
        # No trusted proxy is how gunicorn spells "ignore proxy headers".
        "forwarded_allow_ips": settings.forwarded_allow_ips if settings.proxy_headers else "",
        "root_path": settings.root_path,
        # gunicorn 25.1+ opens a control socket at one per-user path ($HOME/.gunicorn/gunicorn.ctl),
        # so a second instance on the machine takes it over. Signals (HUP, TTIN, TTOU, TERM) do
        # the same job, the same way on every launcher.
        "control_socket_disable": True,
        "on_starting": hooks.on_starting,
        "pre_fork": hooks.pre_fork,
        "on_exit": hooks.on_exit,
        "on_reload": hooks.on_reload,
        "nworkers_changed": hooks.nworkers_changed,
        "child_exit": hooks.child_exit,
    }
    if settings.tls:
        result |= {
            "certfile": settings.tls_certfile,
            "keyfile": settings.tls_keyfile,
            # gunicorn's default is the deprecated ssl.PROTOCOL_TLS; uvicorn-worker passes it on.
            "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        }
    return result


def command(settings: Settings) -> Command:
    return conf_command(config(settings), settings)


def conf_command(resolved: dict[str, Any], settings: Settings) -> Command:
    """gunicorn run with `launchers.gunicorn.conf`, which applies `resolved`: this launcher's
    `config()`, or gunicorn-asgi's (the module picks by `LAUNCHER`)."""
    lines = [f"{name} = {_render(value)}" for name, value in resolved.items()]
    return Command(
        [sys.executable, "-m", "gunicorn", "--config", "python:launchers.gunicorn.conf"],
        config="# launchers/gunicorn/conf.py resolves to:\n" + "\n".join(lines) + "\n",
    )


def _render(value: object) -> str:
    if isinstance(value, FunctionType):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)
