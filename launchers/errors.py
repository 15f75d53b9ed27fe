"""Configuration errors as one paragraph that names the culprit, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class ConfigError(Exception):
    """Bad configuration: the message is for the person who set it."""


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
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "less_than_equal":
            return f"must be at most {ctx['le']}"
        case "literal_error":
            return f"must be one of {ctx['expected']}"
        case "value_error":
            return str(ctx["error"])
    return f"is not valid: {detail['msg']}"
