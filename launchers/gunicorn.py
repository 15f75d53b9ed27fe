"""gunicorn pre-fork: a master process that forks workers running uvicorn's server.

Fork means workers start as copies of the master, cheaply; the master also restarts dead or
stuck workers (its `timeout` heartbeat comes from each worker's event loop). gunicorn reads its
configuration from `launchers.gunicorn_conf`, which applies `config()` below, so the printed
configuration and the running one are the same translation.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

from app.settings import Settings
from launchers import APP
from launchers.command import Command

OPTIONS = {
    "host": "bind",
    "port": "bind",
    "web_concurrency": "workers",
    "reload": "reload",
    "log_level": "loglevel",
    "keep_alive_timeout": "keepalive",
    "graceful_timeout": "graceful_timeout",
    "proxy_headers": "forwarded_allow_ips",
    "forwarded_allow_ips": "forwarded_allow_ips",
    "root_path": "root_path",
    "tls_certfile": "certfile",
    "tls_keyfile": "keyfile",
}

REFUSED: frozenset[str] = frozenset()
# gunicorn's own HTTP/2 (beta) is for its own workers; UvicornWorker speaks HTTP/1.1.
IGNORED: dict[str, object] = {"http2": False}

WORKER = "launchers.gunicorn_worker.UvicornWorker"


def config(settings: Settings) -> dict[str, Any]:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    result: dict[str, Any] = {
        "wsgi_app": APP,
        "worker_class": WORKER,
        "bind": [f"{host}:{settings.port}"],
        "workers": settings.web_concurrency,
        "reload": settings.reload,
        "loglevel": settings.log_level,
        "errorlog": "-",
        "accesslog": "-",
        "keepalive": settings.keep_alive_timeout,
        "graceful_timeout": settings.graceful_timeout,
        # No trusted proxy is how gunicorn spells "ignore proxy headers".
        "forwarded_allow_ips": settings.forwarded_allow_ips if settings.proxy_headers else "",
        "root_path": settings.root_path,
        # gunicorn 25.1+ opens a control socket at one per-user path ($HOME/.gunicorn/gunicorn.ctl),
        # so a second instance on the machine takes it over. Signals (HUP, TTIN, TTOU, TERM) do
        # the same job, the same way on every launcher.
        "control_socket_disable": True,
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
    lines = [f"{name} = {value!r}" for name, value in config(settings).items()]
    return Command(
        [sys.executable, "-m", "gunicorn", "--config", "python:launchers.gunicorn_conf"],
        config="# launchers/gunicorn_conf.py resolves to:\n" + "\n".join(lines) + "\n",
    )
