"""Each launcher's native configuration for a given set of settings, exactly; no process runs."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from launchers import APP, LAUNCHERS, fastapi_cli, gunicorn, load, uvicorn
from launchers.errors import ConfigError
from launchers.preflight import NOT_SERVER_OPTIONS, unsupported

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
}


def test_uvicorn_command() -> None:
    command = uvicorn.command(Settings.model_validate(CUSTOM))
    assert command.argv == [
        sys.executable, "-m", "uvicorn", APP,
        "--host", "0.0.0.0", "--port", "9000", "--workers", "3",
        "--log-level", "warning", "--timeout-keep-alive", "7", "--timeout-graceful-shutdown", "12",
        "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,127.0.0.1", "--root-path", "/api",
    ]  # fmt: skip


def test_uvicorn_tls_reload_and_no_proxy_headers(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    settings = Settings.model_validate(
        {"reload": True, "web_concurrency": 1, "proxy_headers": False}
        | {"tls_certfile": str(cert), "tls_keyfile": str(key)}
    )
    argv = uvicorn.command(settings).argv
    assert argv[4:] == [
        "--host", "127.0.0.1", "--port", "8000", "--workers", "1", "--reload",
        "--log-level", "info", "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", "30",
        "--no-proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
        "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
    ]  # fmt: skip


def test_fastapi_cli_command() -> None:
    command = fastapi_cli.command(Settings.model_validate(CUSTOM))
    assert command.argv == [
        sys.executable, "-m", "fastapi", "run", "--entrypoint", APP,
        "--host", "0.0.0.0", "--port", "9000", "--workers", "3", "--no-reload",
        "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,127.0.0.1", "--root-path", "/api",
    ]  # fmt: skip


def test_gunicorn_config() -> None:
    assert gunicorn.config(Settings.model_validate(CUSTOM)) == {
        "wsgi_app": APP,
        "worker_class": "launchers.gunicorn_worker.UvicornWorker",
        "bind": ["0.0.0.0:9000"],
        "workers": 3,
        "reload": False,
        "loglevel": "warning",
        "errorlog": "-",
        "accesslog": "-",
        "keepalive": 7,
        "graceful_timeout": 12,
        "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
        "root_path": "/api",
        "control_socket_disable": True,
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
        "python:launchers.gunicorn_conf",
    ]
    assert "worker_class = 'launchers.gunicorn_worker.UvicornWorker'" in command.config


def test_gunicorn_never_uses_the_deprecated_uvicorn_workers_module() -> None:
    sources = [p.read_text() for p in (ROOT / "launchers").glob("*.py")]
    assert not [s for s in sources if "uvicorn.workers" in s]


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_every_server_setting_is_mapped_or_reported(name: str) -> None:
    """A launcher either maps a setting, refuses it, or warns that it is ignored: never silence."""
    module = load(name)
    for field in set(Settings.model_fields) - NOT_SERVER_OPTIONS:
        if field in module.OPTIONS:
            continue
        values: dict[str, Any] = {field: "x" if field.startswith("tls") else 1}
        settings = Settings.model_construct(**values)
        if field in module.REFUSED:
            with pytest.raises(ConfigError, match=field.upper()):
                unsupported(name, module, settings)
        else:
            assert any(field.upper() in w for w in unsupported(name, module, settings)), field


def test_warnings_only_where_the_server_would_do_otherwise() -> None:
    assert unsupported("fastapi-cli", fastapi_cli, Settings()) == [
        "fastapi-cli has no option for GRACEFUL_TIMEOUT=30 (it uses None; uvicorn and gunicorn "
        "can)."
    ]
    settings = Settings(log_level="debug", graceful_timeout=5, http2=True)
    assert unsupported("fastapi-cli", fastapi_cli, settings) == [
        "fastapi-cli has no option for LOG_LEVEL='debug' (it uses 'info'; uvicorn and gunicorn "
        "can), GRACEFUL_TIMEOUT=5 (it uses None; uvicorn and gunicorn can), HTTP2=True (it uses "
        "False; uvicorn can)."
    ]
    assert unsupported("gunicorn", gunicorn, settings) == [
        "gunicorn has no option for HTTP2=True (it uses False; uvicorn can)."
    ]
    assert unsupported("uvicorn", uvicorn, settings) == []
    assert unsupported("gunicorn", gunicorn, Settings()) == []


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_every_unmapped_setting_is_declared_refused_or_ignored(name: str) -> None:
    launcher = load(name)
    server_settings = set(Settings.model_fields) - NOT_SERVER_OPTIONS
    unmapped = server_settings - set(launcher.OPTIONS)
    assert unmapped == set(launcher.REFUSED) | set(launcher.IGNORED)


def test_pyproject_entrypoint_is_the_launchers_app() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["fastapi"]["entrypoint"] == APP
