"""What a launcher produces: a native command, with the environment its workers need."""

from __future__ import annotations

import runpy
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from launchers.settings import Settings


@dataclass(frozen=True)
class Command:
    """`python -m MODULE ARGS`, with the environment it needs. The launcher runs it in its own
    process, which becomes the server's (`run_in_process`); pasted into a shell, it does the
    same."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    config: str = ""  # a native configuration file, where the server reads one

    def render(self) -> str:
        env = [f"{name}={shlex.quote(value)}" for name, value in sorted(self.env.items())]
        text = " ".join([*env, shlex.join(self.argv)])
        return f"{text}\n\n{self.config}" if self.config else text

    def run_in_process(self) -> None:
        """Run `python -m MODULE ARGS` here, as that command would: the module as `__main__`,
        with `sys.argv` its arguments. It ends by exiting, as the server does."""
        _python, dash_m, module, *args = self.argv
        assert dash_m == "-m", self.argv
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


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


def call(callee: str, arguments: Mapping[str, object]) -> str:
    """`callee(...)` as Python source, an argument a line: what `--print` shows of a server that
    a launcher's own module builds in Python."""
    lines = [f"    {name}={value!r}," for name, value in arguments.items()]
    return f"{callee}(\n" + "\n".join(lines) + "\n)\n"


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
