"""The kit's settings: how any app is served. Each variable is declared here, once.

Launchers translate a `Settings` into their server's native options; the kit's in-app parts
(`launchers.features`) read the same model in every worker. The served app declares its own
settings in a model of its own (the sample's: `app.settings`). Field names are the variable names
in lower case (`WEB_CONCURRENCY` is `web_concurrency`), read from the environment first, then
from `.env` in the working directory.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ByteSize, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IMPORT_STRING = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LogFormat = Literal["auto", "console", "json"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,  # `LAUNCHER=` (as `make run LAUNCHER=` sets it) means unset
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    app: str = Field(
        "app.main:app",
        description="The ASGI app to serve, as `module:attribute` (importable from the working "
        "directory). Every launcher, `--print`, the migrations and `make bench` serve this one.",
    )
    launcher: str = Field(
        "uvicorn",
        description="Launcher that `python -m launchers` runs when none is named. Launchers set "
        "it for their workers, so `/info` reports what really serves.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on; `0.0.0.0` in a container.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    web_concurrency: int | None = Field(
        None,
        ge=1,
        description="Worker processes. Unset: the CPUs this process may use (affinity and cgroup "
        "quota), capped by `MAX_WORKERS`. Launchers set it for their workers to the count in use.",
    )
    max_workers: int = Field(
        8, ge=1, description="Cap on the computed worker count (not on `WEB_CONCURRENCY`)."
    )
    reload: bool = Field(
        False, description="Restart on code changes (development only; implies one worker)."
    )
    log_level: LogLevel = Field("info", description="Level of every logger: app, access, server.")
    log_format: LogFormat = Field(
        "auto",
        description="`json`: one JSON object per line; `console`: readable lines, coloured on a "
        "terminal; `auto`: `console` when the output is a terminal, `json` otherwise (a "
        "container, a pipe, a file). Applies to every logger of every process.",
    )
    keep_alive_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    graceful_timeout: int = Field(
        30, ge=1, description="Seconds in-flight requests get to finish on shutdown or reload."
    )
    worker_timeout: int = Field(
        30,
        ge=1,
        description="Seconds a worker's event loop may stay blocked before the manager kills and "
        "replaces the worker.",
    )
    preload: bool = Field(
        False,
        description="Import the app once in gunicorn's master, then fork the workers from it: "
        "they share its memory copy-on-write and start faster (uvicorn spawns: it has no such "
        "option). Code changes then need a restart, not a reload.",
    )
    max_requests: int = Field(
        0, ge=0, description="Replace a worker after this many requests (leak guard); 0: never."
    )
    max_requests_jitter: int = Field(
        0,
        ge=0,
        description="Up to this many requests more, at random per worker, so that workers are "
        "not all replaced at once.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Requests in progress per worker; beyond it, 503. Idle keep-alive "
        "connections do not count (`KEEP_ALIVE_TIMEOUT` closes them): a flood of them cannot "
        "fail the probes of a worker that serves.",
    )
    backlog: int = Field(
        2048, ge=1, description="Connections the kernel queues while every worker is busy."
    )
    max_header_size: ByteSize = Field(
        ByteSize(16 * 1024),
        gt=0,
        description="Largest request line plus headers (e.g. `16KiB`); beyond it, 414 or 431.",
    )
    header_timeout: float = Field(
        10,
        gt=0,
        description="Seconds a client has to send a request's headers; then 408 (slow clients).",
    )
    body_timeout: float = Field(
        30,
        gt=0,
        description="Seconds a request's body may stall; past that head start it must also "
        "average 1 KiB/s, so that a trickle cannot hold a connection; then 408 (slow uploads). "
        "Time the app leaves the body unread does not count.",
    )
    max_body_size: ByteSize = Field(
        ByteSize(1024 * 1024),
        gt=0,
        description="Largest request body (e.g. `1MiB`, `50MB`); beyond it, 413, also for "
        "chunked bodies, without reading them into memory first.",
    )
    server_header: bool = Field(
        False, description="Send a `Server: uvicorn` header (off: don't advertise the software)."
    )
    proxy_headers: bool = Field(
        True,
        description="Trust `X-Forwarded-For`/`-Proto` from the addresses in `FORWARDED_ALLOW_IPS`.",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated proxy addresses or networks to trust; `*` trusts all.",
    )
    root_path: str = Field(
        "", description="Path prefix under which a proxy mounts the app (e.g. `/api`)."
    )
    tls_certfile: str | None = Field(
        None, description="PEM certificate chain; set with `TLS_KEYFILE` to serve HTTPS."
    )
    tls_keyfile: str | None = Field(None, description="PEM private key of `TLS_CERTFILE`.")
    tls_names: Annotated[list[str], NoDecode] = Field(
        [],
        description="Extra names for the development certificate (`make certs`), comma-separated, "
        "besides `localhost`, `127.0.0.1` and `::1`; e.g. `myapp.test`.",
    )
    http2: bool = Field(
        False,
        description="Offer HTTP/2 through ALPN, HTTP/1.1 still offered (uvicorn's young `zttp` "
        "protocol; httptools otherwise).",
    )
    prometheus_multiproc_dir: Path | None = Field(
        None,
        description="Directory where workers share metrics (prometheus-client's multiprocess "
        "mode). Unset: the uvicorn, gunicorn and granian launchers make a fresh one per run and "
        "remove it at exit. Set: emptied when the launcher starts.",
    )
    service_name: str | None = Field(
        None,
        description="The service's name in OpenTelemetry (`service.name`), unless "
        "`OTEL_SERVICE_NAME` is set. Unset: the app's title (`FastAPI(title=...)`).",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`): every worker then "
        "exports traces and metrics to it. Unset: OpenTelemetry stays off. The other `OTEL_*` "
        "variables are read by the OpenTelemetry SDK.",
    )

    migrate: bool = Field(
        True,
        description="Run the app's migrations (`MIGRATIONS`) once when launching, before any "
        "worker starts. Off where a deployment step runs `python -m launchers.migrate` (a "
        "Kubernetes init container).",
    )
    migrations: str = Field(
        "",
        description="What brings the database to the code's schema: a function, as "
        "`module:function`, called with no argument. Unset: `migrations:upgrade` in the package "
        "of `APP` when it has one (the sample's `app.migrations`), else nothing.",
    )

    @field_validator("app")
    @classmethod
    def _import_string(cls, value: str) -> str:
        if not IMPORT_STRING.fullmatch(value):
            raise ValueError("is not module:attribute (e.g. app.main:app)")
        return value

    @field_validator("migrations")
    @classmethod
    def _function_string(cls, value: str) -> str:
        if value and not IMPORT_STRING.fullmatch(value):
            raise ValueError("is not module:function (e.g. app.migrations:upgrade)")
        return value

    @field_validator("tls_names", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("tls_certfile", "tls_keyfile")
    @classmethod
    def _readable_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("no such file")
        return value

    @field_validator("log_format")
    @classmethod
    def _auto_format(cls, value: str) -> str:
        # Decided where the output goes: people read a terminal, programs read everything else.
        if value == "auto":
            return "console" if sys.stdout.isatty() else "json"
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("is not an http:// or https:// URL (the OTLP/HTTP endpoint)")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("TLS_CERTFILE and TLS_KEYFILE go together: set both or neither")
        if self.max_requests_jitter and not self.max_requests:
            raise ValueError("MAX_REQUESTS_JITTER needs MAX_REQUESTS: there is nothing to jitter")
        return self

    @property
    def migrations_function(self) -> str | None:
        """`MIGRATIONS`, or the default for `APP`: None when there is nothing to run."""
        if self.migrations:
            return self.migrations
        module = self.app.partition(":")[0]
        if "." not in module:
            # A module of its own, not a package: no migrations beside it, and asking for
            # `module.migrations` would import the whole app in the launcher.
            return None
        package = module.partition(".")[0]
        try:
            found = importlib.util.find_spec(f"{package}.migrations")
        except ImportError:  # the package itself is missing: the server will say so
            return None
        return f"{package}.migrations:upgrade" if found else None

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"
