"""gunicorn pre-fork: a master process that forks workers running uvicorn's server.

Fork means workers start as copies of the master, cheaply; the master also restarts dead or
stuck workers (its `timeout` heartbeat comes from each worker's event loop). gunicorn reads its
configuration from `launchers.gunicorn.conf`, which applies `config()` below, so the printed
configuration and the running one are the same translation; `plain()` passes it as gunicorn's
flags, with uvicorn-worker's own worker class in place of ours.
"""

from __future__ import annotations

import ssl
import sys
from types import FunctionType
from typing import Any

from launchers import logs, uvicorn
from launchers.command import METRICS, Command, Plain, losses
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
STOCK_WORKER = "uvicorn_worker.UvicornWorker"  # the class ours refines
# gunicorn settings that the stock worker does not hand to uvicorn (uvicorn_worker/_workers.py):
# ours passes `uvicorn.server_options()` instead. The plain command leaves them out.
UNREAD = {"worker_connections": "MAX_CONNECTIONS", "root_path": "ROOT_PATH"}


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
    return Command(
        [sys.executable, "-m", "gunicorn", "--config", "python:launchers.gunicorn.conf"],
        config="# launchers/gunicorn/conf.py resolves to this gunicorn.conf.py:\n"
        + conf_file(resolved),
    )


def conf_file(resolved: dict[str, Any]) -> str:
    """`resolved` as a gunicorn.conf.py that runs as it is, as `launchers.gunicorn.conf` does:
    the metrics directory shared first, the hooks imported by name."""
    hooks = {name: value for name, value in resolved.items() if isinstance(value, FunctionType)}
    lines = ["from launchers.gunicorn.hooks import share_metrics"]
    lines += [f"from {hook.__module__} import {hook.__qualname__}" for hook in hooks.values()]
    lines += ["", "share_metrics()", ""]
    for name, value in resolved.items():
        if name not in hooks:
            lines.append(f"{name} = {value!r}")
        elif name != value.__qualname__:
            lines.append(f"{name} = {value.__qualname__}")
    return "\n".join(lines) + "\n"


def plain(settings: Settings) -> Plain:
    """`gunicorn --worker-class uvicorn_worker.UvicornWorker --flags APP`: `config()` through
    gunicorn's flags, with the stock worker, which runs uvicorn's server with few options."""
    options = config(settings)
    unread = [setting for name, setting in UNREAD.items() if options.pop(name) not in ("", None)]
    argv, unflagged = flags(options | {"worker_class": STOCK_WORKER})
    worker = uvicorn.protocol_losses(settings)
    if unread:
        worker.append(f"{' and '.join(unread)}, which the stock worker does not pass to uvicorn")
    worker += [
        "SIGQUIT stopping a worker at once",
        "the heartbeat while a worker drains, and workers stopping when the master is killed",
    ]
    if settings.http2:
        worker.append("HTTP2 (the stock worker has no option for it)")
    if not settings.server_header:
        worker.append("SERVER_HEADER=false (the stock worker sends `Server: uvicorn`)")
    return Plain(["gunicorn", *argv], worker + losses(unflagged, hook_losses(settings)))


def hook_losses(settings: Settings) -> dict[str, str | None]:
    """What the plain command loses without each of our hooks, or `None` for nothing here."""
    scaled = "the worker count SIGTTIN/SIGTTOU set kept across SIGHUP"
    return {
        "logconfig_dict": "LOG_FORMAT on the master's lines",
        "on_starting": "SIGINT draining like SIGTERM",
        "pre_fork": "PRELOAD's app kept out of the collector's reach" if settings.preload else None,
        "on_reload": scaled,
        "nworkers_changed": scaled,
        "child_exit": METRICS,
        "on_exit": METRICS,
        # The stock worker gives uvicorn gunicorn's default, deprecated PROTOCOL_TLS: it warns.
        "ssl_version": None,
    }


def flags(options: dict[str, Any]) -> tuple[list[str], list[str]]:
    """gunicorn settings as its command-line flags, as each setting declares them; the app last.
    Returns the argv, and the settings that have no flag (hooks, a dictionary, a constant)."""
    from gunicorn.config import KNOWN_SETTINGS

    declared = {setting.name: setting for setting in KNOWN_SETTINGS}
    argv: list[str] = []
    unflagged: list[str] = []
    for name, value in options.items():
        setting = declared[name]
        flag = next((f for f in setting.cli or [] if f.startswith("--")), None)
        if name == "wsgi_app" or value is None or value == setting.default == "":
            continue  # the app comes last; unset, or empty as by default: nothing to say
        if flag is None or type(value) not in (str, int, bool, list):
            unflagged.append(name)
        elif setting.action == "store_true":
            argv += [flag] if value else []
        else:
            argv += [part for item in _listed(value) for part in (flag, str(item))]
    return [*argv, options["wsgi_app"]], unflagged


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]
