"""Configuration errors as one paragraph that names the culprit, never a traceback."""

from __future__ import annotations

import difflib
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar, get_args, overload

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import SecretBytes, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings

from launchers.settings import Settings

Model = TypeVar("Model", bound=BaseSettings)


class ConfigError(Exception):
    """Bad configuration: the message is for the person who set it."""


def report(error: ConfigError) -> int:
    """Print the error as the one paragraph a user reads; the exit status of a command."""
    print(f"error: {error}", file=sys.stderr)
    return 2


@overload
def load_settings() -> Settings: ...
@overload
def load_settings(model: type[Model]) -> Model: ...
def load_settings(model: type[BaseSettings] = Settings) -> BaseSettings:
    """The settings of `model` (the kit's, or an app's own), or a ConfigError that names the
    variable, the value or the `.env` line."""
    check_dotenv(Path(".env"))
    try:
        return model()
    except ValidationError as error:
        raise from_validation(error, model=model) from None


def check_dotenv(path: Path) -> None:
    # pydantic-settings skips a `.env` that is not a file and lines it cannot parse, and fails
    # with a traceback on one that is not UTF-8: say which, instead.
    if not path.exists():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        problem = f"{path} is not UTF-8 text ({error.reason} at byte {error.start})."
        raise ConfigError(problem) from None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror}.") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # Not the line itself: it may hold a secret.
            raise ConfigError(f"{path} line {binding.original.line} is not NAME=value.")


def dotenv_typos(path: Path = Path(".env"), model: type[BaseSettings] = Settings) -> list[str]:
    """Warnings for `.env` keys that look like a misspelt setting. Other keys are left alone:
    a `.env` is often shared with other tools."""
    if not path.is_file():
        return []
    known = [name.upper() for name in model.model_fields]
    warnings = []
    for key in dotenv_values(path):
        if key.upper() in known:
            continue
        if close := difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.8):
            warnings.append(f"{path} sets {key}, which is no setting: did you mean {close[0]}?")
    return warnings


def from_validation(
    error: ValidationError,
    environ: Mapping[str, str] = os.environ,
    model: type[BaseSettings] = Settings,
) -> ConfigError:
    problems = [_describe(detail, environ, model) for detail in error.errors()]
    return ConfigError("bad configuration: " + "; ".join(problems) + ".")


def _describe(detail: ErrorDetails, environ: Mapping[str, str], model: type[BaseSettings]) -> str:
    problem = _problem(detail)
    if not detail["loc"]:  # a rule across settings
        return problem
    field = str(detail["loc"][0])
    name = field.upper()
    source = "" if name in environ else " (from .env)"
    return f"{name}{_shown(field, detail['input'], model)}{source} {problem}"


def _shown(field: str, value: object, model: type[BaseSettings]) -> str:
    """`=value`, the culprit, unless it is a secret: a SecretStr's is never shown, and a
    database URL's password is masked."""
    info = model.model_fields.get(field)
    if info is not None and _secret(info.annotation):
        return " (value hidden)"
    if isinstance(value, str) and "://" in value:  # a URL's password, e.g. a database's
        value = _without_password(value)
    return f"={value!r}"


def _secret(annotation: object) -> bool:
    return annotation in (SecretStr, SecretBytes) or any(map(_secret, get_args(annotation)))


def _without_password(url: str) -> str:
    # Up to the last "@": a password may hold "@" or "/" that its URL did not escape.
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}{separator}{user}:***@{host}" if at and colon else url


def _problem(detail: ErrorDetails) -> str:
    ctx = detail.get("ctx", {})
    match detail["type"]:
        case "int_parsing" | "int_from_float" | "int_type":
            return "is not a whole number"
        case "bool_parsing":
            return "is not true or false"
        case "float_parsing" | "float_type":
            return "is not a number"
        case "byte_size" | "byte_size_unit":
            return "is not a size such as 16KiB, 1MiB or 50MB"
        case "greater_than":
            return f"must be more than {ctx['gt']}"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "less_than_equal":
            return f"must be at most {ctx['le']}"
        case "literal_error":
            return f"must be one of {ctx['expected']}"
        case "value_error":
            return str(ctx["error"])
    return f"is not valid: {detail['msg']}"
