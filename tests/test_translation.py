"""Each launcher's native configuration for a given set of settings, exactly; no process runs."""

from __future__ import annotations

import io
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from launchers import LAUNCHERS, fastapi_cli, granian, gunicorn, load, logs, uvicorn
from launchers.errors import ConfigError
from launchers.gunicorn import hooks as gunicorn_hooks
from launchers.preflight import server_settings, unsupported
from launchers.settings import Settings
from launchers.uvicorn.limits import Limits

APP = "app.main:app"  # the default APP
ROOT = Path(__file__).resolve().parent.parent

CUSTOM = {
    "host": "0.0.0.0",
    "port": 9000,
    "web_concurrency": 3,
    "log_level": "warning",
    "keep_alive_timeout": 7,
    "graceful_timeout": 12,
    "proxy_headers": True,
    "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
    "root_path": "/api",
    "log_format": "json",
}


def test_uvicorn_config() -> None:
    assert uvicorn.config(Settings.model_validate(CUSTOM)) == {
        "app": APP,
        "host": "0.0.0.0",
        "port": 9000,
        "workers": 3,
        "reload": False,
        "log_level": "warning",
        "backlog": 2048,
        "limit_max_requests": None,
        "limit_max_requests_jitter": 0,
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "http": "launchers.uvicorn.protocol:HttpToolsProtocol",
        "http2": False,
        "timeout_keep_alive": 7,
        "timeout_graceful_shutdown": 12,
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
        "root_path": "/api",
        "limit_concurrency": 1000,
        "server_header": False,
        "log_config": logs.dict_config(Settings.model_validate(CUSTOM)),
        "access_log": False,
        "limits": Limits(
            max_header_size=16384, header_timeout=10, body_timeout=30, worker_timeout=30
        ),
    }


def test_uvicorn_limits_tls_and_http2(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    settings = Settings.model_validate(
        {"tls_certfile": str(cert), "tls_keyfile": str(key), "http2": True}
        | {"max_requests": 500, "max_requests_jitter": 50, "max_connections": 64}
        | {"max_header_size": "8KiB", "header_timeout": 2.5, "worker_timeout": 9}
        | {"body_timeout": 4}
    )
    config = uvicorn.config(settings)
    assert {k: config[k] for k in ("ssl_certfile", "ssl_keyfile", "http", "http2")} == {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "http": "launchers.uvicorn.zttp:AutoZttpProtocol",
        "http2": False,  # uvicorn's http2=True would load its own zttp dispatcher instead
    }
    assert (config["limit_max_requests"], config["limit_max_requests_jitter"]) == (500, 50)
    assert config["limit_concurrency"] == 64
    assert config["limits"] == Limits(
        max_header_size=8192, header_timeout=2.5, body_timeout=4, worker_timeout=9
    )


def test_uvicorn_command_runs_our_uvicorn_main() -> None:
    command = uvicorn.command(Settings())
    assert command.argv == [sys.executable, "-m", "launchers.uvicorn"]
    assert "    http='launchers.uvicorn.protocol:HttpToolsProtocol',\n" in command.config


def test_fastapi_cli_command() -> None:
    command = fastapi_cli.command(Settings.model_validate(CUSTOM))
    assert command.argv == [
        sys.executable, "-m", "fastapi", "run", "--entrypoint", APP,
        "--host", "0.0.0.0", "--port", "9000", "--workers", "3", "--no-reload",
        "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,127.0.0.1", "--root-path", "/api",
    ]  # fmt: skip


def test_granian_config() -> None:
    assert granian.config(Settings.model_validate(CUSTOM)) == {
        "target": APP,
        "interface": "asgi",
        "address": "0.0.0.0",
        "port": 9000,
        "workers": 3,
        "reload": False,
        "reload_filter": "watchfiles.PythonFilter",
        "log_level": "warning",
        "log_dictconfig": logs.dict_config(Settings.model_validate(CUSTOM)),
        "backlog": 2048,
        "workers_kill_timeout": 12,
        "http1_settings": {"header_read_timeout": 10_000},
        "url_path_prefix": "/api",
        "ssl_cert": None,
        "ssl_key": None,
        "http": "1",
        "respawn_failed_workers": True,
    }


def test_granian_tls_http2_and_header_deadline(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    settings = Settings.model_validate(
        {"tls_certfile": str(cert), "tls_keyfile": str(key), "http2": True, "header_timeout": 2.5}
    )
    config = granian.config(settings)
    assert {k: config[k] for k in ("ssl_cert", "ssl_key", "http", "http1_settings")} == {
        "ssl_cert": str(cert),
        "ssl_key": str(key),
        "http": "auto",
        "http1_settings": {"header_read_timeout": 2500},
    }
    command = granian.command(settings)
    assert command.argv == [sys.executable, "-m", "launchers.granian"]
    assert "    http='auto',\n" in command.config


def test_gunicorn_config() -> None:
    assert gunicorn.config(Settings.model_validate(CUSTOM)) == {
        "wsgi_app": APP,
        "worker_class": "launchers.gunicorn.worker.UvicornWorker",
        "bind": ["0.0.0.0:9000"],
        "workers": 3,
        "reload": False,
        "loglevel": "warning",
        "errorlog": "-",
        "accesslog": None,
        "logconfig_dict": logs.dict_config(Settings.model_validate(CUSTOM)),
        "keepalive": 7,
        "graceful_timeout": 12,
        "backlog": 2048,
        "timeout": 30,
        "preload_app": False,
        "max_requests": 0,
        "max_requests_jitter": 0,
        "worker_connections": 1000,
        "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
        "root_path": "/api",
        "control_socket_disable": True,
        "on_starting": gunicorn_hooks.on_starting,
        "pre_fork": gunicorn_hooks.pre_fork,
        "on_exit": gunicorn_hooks.on_exit,
        "on_reload": gunicorn_hooks.on_reload,
        "nworkers_changed": gunicorn_hooks.nworkers_changed,
        "child_exit": gunicorn_hooks.child_exit,
    }


def test_gunicorn_ipv6_bind_and_proxy_headers_off() -> None:
    config = gunicorn.config(Settings(host="::1", proxy_headers=False))
    assert (config["bind"], config["forwarded_allow_ips"]) == (["[::1]:8000"], "")


def test_gunicorn_command_names_its_config_module() -> None:
    command = gunicorn.command(Settings())
    assert command.argv == [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:launchers.gunicorn.conf",
    ]
    assert "worker_class = 'launchers.gunicorn.worker.UvicornWorker'" in command.config


def test_gunicorn_never_uses_the_deprecated_uvicorn_workers_module() -> None:
    sources = [p.read_text() for p in (ROOT / "launchers").glob("*.py")]
    assert not [s for s in sources if "uvicorn.workers" in s]


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_every_server_setting_is_mapped_or_reported(name: str) -> None:
    """A launcher either maps a setting, refuses it, or warns that it is ignored: never silence."""
    module = load(name)
    for field in server_settings():
        if field in module.OPTIONS:
            continue
        # A value unlike anything a server does on its own (1 would equal True).
        values: dict[str, Any] = {field: "something else"}
        settings = Settings.model_construct(**values)
        if field in module.REFUSED:
            with pytest.raises(ConfigError, match=field.upper()):
                unsupported(name, module, settings)
        else:
            assert any(field.upper() in w for w in unsupported(name, module, settings)), field


def test_http2_says_which_limits_it_gives_up() -> None:
    for launcher in (uvicorn, gunicorn):
        assert launcher.notes(Settings()) == []
        (warning,) = launcher.notes(Settings(http2=True))
        assert warning.startswith("HTTP2=true serves through zttp, which applies neither")
        assert "BODY_TIMEOUT" in warning


def test_warnings_only_where_the_server_would_do_otherwise() -> None:
    (warning,) = unsupported("fastapi-cli", fastapi_cli, Settings(log_format="console"))
    # Which launchers can is said too; a launcher added to the registry joins those lists.
    assert "GRACEFUL_TIMEOUT (it uses None; uvicorn, gunicorn" in warning
    assert re.sub(r"; [^;)]* can\)", ")", warning) == (
        "fastapi-cli has no option for GRACEFUL_TIMEOUT (it uses None), WORKER_TIMEOUT (it uses "
        "None), MAX_CONNECTIONS (it uses None), MAX_HEADER_SIZE (it uses None), HEADER_TIMEOUT "
        "(it uses None), BODY_TIMEOUT (it uses None), SERVER_HEADER (it uses True)."
    )
    settings = Settings(log_level="debug", http2=True)
    assert "LOG_LEVEL (it uses 'info'; uvicorn, gunicorn" in "".join(
        unsupported("fastapi-cli", fastapi_cli, settings)
    )
    assert unsupported("uvicorn", uvicorn, settings) == []
    assert unsupported("gunicorn", gunicorn, settings) == []


@pytest.mark.parametrize(("terminal", "chosen"), [(True, "console"), (False, "json")])
def test_log_format_auto_follows_the_output(
    terminal: bool, chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Output(io.StringIO):
        def isatty(self) -> bool:
            return terminal

    monkeypatch.setattr(sys, "stdout", Output())
    assert Settings().log_format == chosen
    assert Settings(log_format="console").log_format == "console"
    assert Settings(log_format="json").log_format == "json"


def test_the_settings_no_server_knows_are_the_launchers_and_the_apps() -> None:
    # A new server setting that no launcher lists would fall silently in this set.
    assert set(Settings.model_fields) - server_settings() == {
        "app",
        "launcher",
        "max_workers",
        "tls_names",
        "max_body_size",
        "prometheus_multiproc_dir",
        "service_name",
        "otel_exporter_otlp_endpoint",
        "migrate",
        "migrations",
    }


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_every_unmapped_setting_is_declared_refused_or_ignored(name: str) -> None:
    launcher = load(name)
    unmapped = server_settings() - set(launcher.OPTIONS)
    assert unmapped == set(launcher.REFUSED) | set(launcher.IGNORED)


def test_pyproject_entrypoint_is_the_launchers_app() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["fastapi"]["entrypoint"] == APP


def test_one_logging_configuration_for_every_logger() -> None:
    config = logs.dict_config(Settings.model_validate({"log_format": "json", "log_level": "debug"}))
    assert config["formatters"]["structlog"] == {"()": "launchers.logs.formatter", "json": True}
    assert config["root"] == {"handlers": ["stdout"], "level": "DEBUG"}
    # Servers' loggers hand their lines to the root's handler; their access logs are replaced.
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        assert config["loggers"][name] == {"handlers": [], "propagate": True, "level": "DEBUG"}
    for name in ("uvicorn.access", "gunicorn.access"):
        assert config["loggers"][name]["propagate"] is False
