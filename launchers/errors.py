"""Configuration errors as one paragraph that names the culprit, never a traceback."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dotenv.parser import parse_stream
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.settings import Settings


class ConfigError(Exception):
    """Bad configuration: the message is for the person who set it."""


def report(error: ConfigError) -> int:
    """Print the error as the one paragraph a user reads; the exit status of a command."""
    print(f"error: {error}", file=sys.stderr)
    return 2


def load_settings(dotenv: Path = Path(".env")) -> Settings:
    """The settings, or a ConfigError that names the variable, the value or the `.env` line."""
    check_dotenv(dotenv)
    try:
        return Settings()
    except ValidationError as error:
        raise from_validation(error) from None


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
            raise ConfigError(
                f"{path} line {binding.original.line} is not NAME=value: "
                f"{binding.original.string.strip()!r}."
            )


def from_validation(error: ValidationError, environ: Mapping[str, str] = os.environ) -> ConfigError:
    problems = [_describe(detail, environ) for detail in error.errors()]
    return ConfigError("bad configuration: " + "; ".join(problems) + ".")


def _describe(detail: ErrorDetails, environ: Mapping[str, str]) -> str:
    problem = _problem(detail)
    if not detail["loc"]:  # a rule across settings
        return problem
    name = str(detail["loc"][0]).upper()
    source = "" if name in environ else " (from .env)"
    return f"{name}={detail['input']!r}{source} {problem}"


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
