"""`python -m launchers [NAME] [--print]`: validate settings, translate, then become the server.

The launcher runs the server's command in its own process (`runpy`, as `python -m` would): the
server's manager is the process a terminal or container runtime signals, with nothing in between,
and what the launcher has imported (settings, logging, the server) is not imported again.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from launchers import ALIASES, LAUNCHERS, load, logs, migrate
from launchers.command import Command, Launcher, Plain
from launchers.errors import ConfigError, dotenv_typos, load_settings, report
from launchers.metrics_dir import empty
from launchers.preflight import check_app, check_port, check_tls, unsupported
from launchers.settings import Settings
from launchers.workers import worker_count

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::")


@dataclass(frozen=True)
class Plan:
    settings: Settings
    command: Command
    banner: str  # the start-up line: where, how many workers, and why
    warnings: list[str]
    launcher: Launcher
    env: dict[str, str]  # what workers learn of how they are served, whatever the command

    def plain(self) -> Plain:
        """The stock server's nearest command, and what it loses; for `--print` only, as it
        imports the server's CLI."""
        plain = self.launcher.plain(self.settings)
        lost = [*plain.loses, *_own_work(self.settings)]
        return dataclasses.replace(plain, loses=lost, env=self.env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launchers", description=__doc__)
    choices = ", ".join([*LAUNCHERS, *ALIASES])
    parser.add_argument("name", nargs="?", help=f"launcher ({choices}); default: LAUNCHER")
    parser.add_argument(
        "--print",
        action="store_true",
        help="print the native command, then the nearest plain one, and exit; run nothing",
    )
    args = parser.parse_args(argv)
    try:
        plan = prepare(args.name)
        if args.print:
            for warning in plan.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(plan.command.render().rstrip("\n"), plan.plain().render(), sep="\n\n")
            return 0
        check_tls(plan.settings)
        check_port(plan.settings)
        # The launcher's lines have the format of the server's lines that follow them.
        logs.configure(plan.settings)
        log = logging.getLogger("launchers")
        for warning in plan.warnings:
            log.warning(warning)
        if plan.settings.migrate:
            migrate.upgrade(plan.settings)
    except ConfigError as error:
        # Plain text: the settings that would choose a log format may be the ones at fault.
        return report(error)
    if plan.settings.prometheus_multiproc_dir is not None:
        empty(plan.settings.prometheus_multiproc_dir)
    log.info(plan.banner)
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ.update(plan.command.env)
    # What the launcher made lives as long as the server: frozen, so that neither a full
    # collection walks it nor a forked worker unshares its pages by collecting it.
    gc.freeze()
    plan.command.run_in_process()
    return 0


def prepare(requested: str | None) -> Plan:
    settings = load_settings()
    name = ALIASES.get(requested or settings.launcher, requested or settings.launcher)
    if name not in LAUNCHERS:
        culprit = f"launcher {requested!r}" if requested else f"LAUNCHER={settings.launcher!r}"
        raise ConfigError(f"{culprit} is unknown: choose one of {', '.join(LAUNCHERS)}.")
    launcher = load(name)
    check_app(settings)
    workers = worker_count(settings)
    # Workers learn how they are served from these two variables, not by guessing.
    settings = settings.model_copy(update={"launcher": name, "web_concurrency": workers.count})
    warnings = dotenv_typos() + unsupported(name, launcher, settings) + launcher.notes(settings)
    command = launcher.command(settings)
    env = {"LAUNCHER": name, "WEB_CONCURRENCY": str(workers.count)}
    command = dataclasses.replace(command, env=command.env | env)
    banner = f"{name}: serving {settings.app} at {_url(settings)} with {workers}"
    return Plan(settings, command, banner + _trust_hint(settings), warnings, launcher, env)


def _own_work(settings: Settings) -> list[str]:
    """What this command does before any server starts, which no plain command does."""
    work = ["the checks before start that name a bad setting"]
    if settings.migrate and settings.migrations_function is not None:
        work.append("MIGRATE (run `python -m launchers.migrate` first)")
    if settings.prometheus_multiproc_dir is not None:
        work.append("PROMETHEUS_MULTIPROC_DIR emptied at start")
    return work


def _url(settings: Settings) -> str:
    host = settings.host
    if settings.tls and host in LOCAL_HOSTS:
        host = "localhost"  # the name browsers expect, and the development certificate carries
    host = f"[{host}]" if ":" in host else host
    return f"{settings.scheme}://{host}:{settings.port}"


def _trust_hint(settings: Settings) -> str:
    if settings.tls_certfile is None:
        return ""
    ca = Path(settings.tls_certfile).parent / "ca.pem"
    if not ca.exists():
        return ""
    return (
        f"\n  clients trust it once they trust {ca}: `make trust` for browsers and curl, "
        f"SSL_CERT_FILE={ca} for Python"
    )
