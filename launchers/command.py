"""What a launcher produces: a native command, with the environment its workers need."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from app.settings import Settings


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    config: str = ""  # a native configuration file, where the server reads one

    def render(self) -> str:
        env = [f"{name}={shlex.quote(value)}" for name, value in sorted(self.env.items())]
        line = shlex.join(self.argv)
        text = " ".join([*env, line])
        return f"{text}\n\n{self.config}" if self.config else text


class Launcher(Protocol):
    """The shape of a launcher module."""

    @property
    def OPTIONS(self) -> Mapping[str, str]:
        """Setting name -> the native option it becomes. A server setting missing here is
        reported as ignored when the launcher starts, never dropped silently."""

    @property
    def REFUSED(self) -> frozenset[str]:
        """Settings this launcher refuses to start with, because ignoring them would be wrong."""

    @property
    def IGNORED(self) -> Mapping[str, object]:
        """Settings it cannot pass -> what its server does instead. A value that differs from
        that draws a warning at start."""

    def notes(self, settings: Settings) -> list[str]:
        """Warnings of its own about these settings, beyond the options it cannot pass."""

    def command(self, settings: Settings) -> Command: ...


def cli_options(settings: Settings, options: Mapping[str, str]) -> list[str]:
    """Command-line flags for a click/typer CLI: `--flag value`, `--flag` or `--on/--off`."""
    argv: list[str] = []
    for name, flag in options.items():
        value = getattr(settings, name)
        if "/" in flag:
            on, off = flag.split("/")
            argv.append(on if value else off)
        elif isinstance(value, bool):
            argv += flag.split() if value else []
        elif value not in (None, ""):
            argv += [flag, str(value)]
    return argv
