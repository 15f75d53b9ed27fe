"""What a launcher produces: a native command, with the environment its workers need; and, for
`--print`, the stock server's nearest plain command, made from the same translation."""

from __future__ import annotations

import runpy
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from launchers.settings import Settings

if TYPE_CHECKING:
    import click

# Several workers each count alone unless they share a directory, which the launchers make.
METRICS = "one /metrics across workers (set PROMETHEUS_MULTIPROC_DIR to an empty directory)"


@dataclass(frozen=True)
class Command:
    """`python -m MODULE ARGS`, with the environment it needs. The launcher runs it in its own
    process, which becomes the server's (`run_in_process`); pasted into a shell, it does the
    same."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    config: str = ""  # a native configuration file, where the server reads one

    def render(self) -> str:
        text = _shell(self.env, self.argv)
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

    def plain(self, settings: Settings) -> Plain:
        """The stock server's own command nearest to `command()`: the same translation, our
        parts swapped for the stock ones, passed through the flags the server's CLI declares.
        What has no flag there is named in `Plain.loses`, never dropped silently."""


@dataclass(frozen=True)
class Plain:
    """A command of the stock server's CLI alone (`uvicorn APP --workers 2`), for a reader who
    runs the server without the kit, and what it loses against the launcher."""

    argv: list[str]
    loses: list[str]  # what the launcher adds that this command lacks, a phrase each
    little: bool = False  # the launcher adds little to this server, and says so
    env: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        loses = "loses little" if self.little else "loses"
        comment = f"# nearest plain command ({loses}: {'; '.join(self.loses)})"
        return f"{comment}\n{_shell(self.env, self.argv)}"


def _shell(env: Mapping[str, str], argv: list[str]) -> str:
    assignments = [f"{name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    return " ".join([*assignments, shlex.join(argv)])


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


def click_flags(cli: click.Command, options: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """A server's native options (its Python API's arguments) as flags of its click CLI, matched
    by parameter name: the CLI's own declarations say which can be given and how. Returns the
    argv, and the names of the options it has no flag for (or whose value it would refuse)."""
    import click

    params = {param.name: param for param in cli.params}
    argv: list[str] = []
    unflagged: list[str] = []
    for name, value in options.items():
        param = params.get(name)
        if param is None or not _passable(param, value):
            unflagged.append(name)
        elif value is None or (value == "" and param.default in ("", None)):
            continue  # unset: the CLI's default says the same
        elif isinstance(param, click.Argument):
            argv.append(str(value))
        elif isinstance(param, click.Option) and param.is_bool_flag:
            if value or param.secondary_opts:
                argv.append(_long(param.opts if value else param.secondary_opts))
        else:
            argv += [_long(param.opts), str(value)]
    return argv, unflagged


def _passable(param: click.Parameter, value: object) -> bool:
    import click

    if value is None:
        return True
    if type(value) not in (str, int, float, bool):  # a dict, a class, a constant: no flag
        return False
    try:
        param.type.convert(value, param, None)
    except (click.BadParameter, TypeError, ValueError):
        return False
    return True


def _long(opts: list[str]) -> str:
    return next((opt for opt in opts if opt.startswith("--")), opts[0])


def losses(unflagged: Iterable[str], described: Mapping[str, str | None]) -> list[str]:
    """What a plain command loses, by the native options it could not pass: each phrase once, in
    order. `None` describes an option whose absence changes nothing; an option that is not
    described at all is named as it is, not dropped."""
    found: list[str] = []
    for name in unflagged:
        phrase = described.get(name, f"{name}, which has no flag")
        if phrase is not None and phrase not in found:
            found.append(phrase)
    return found
