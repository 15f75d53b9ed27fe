"""The docs' settings table, made from the settings declarations and each launcher's OPTIONS.

The kit's `Settings` first, then the app's own models, named as `module:Model` on the command
line (`make docs` names the sample's, `app.settings:Settings`). It is written into
`docs/settings.md` between the markers; a test fails when the two differ.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from pkgutil import resolve_name

from pydantic_settings import BaseSettings

from launchers import LAUNCHERS, load
from launchers.command import Launcher
from launchers.preflight import server_settings
from launchers.settings import Settings

BEGIN, END = "<!-- settings-table: begin -->", "<!-- settings-table: end -->"
PAGE = Path("docs/settings.md")  # from the repository's root, where `make docs` runs


def settings_table(app_models: Sequence[type[BaseSettings]] = ()) -> str:
    launchers = {name: load(name) for name in LAUNCHERS}
    server = server_settings()
    header = ["Variable", "Default", "Meaning", *launchers]
    rows = [header, ["---"] * len(header)]
    for field, info in Settings.model_fields.items():
        row = [f"`{field.upper()}`", _value(info.default), info.description or ""]
        for launcher in launchers.values():
            row.append(_native(field, launcher) if field in server else "·")
        rows.append(row)
    for model in app_models:  # the app's: read by the app alone, whatever serves it
        for field, info in model.model_fields.items():
            meaning = f"{info.description or ''} (`{model.__module__}`)"
            rows.append(
                [f"`{field.upper()}`", _value(info.default), meaning, *["·"] * len(launchers)]
            )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _value(value: object) -> str:
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _native(field: str, launcher: Launcher) -> str:
    if field in launcher.OPTIONS:
        return f"`{launcher.OPTIONS[field]}`"
    if field in launcher.REFUSED:
        return "refuses to start"
    return f"no (it uses `{launcher.IGNORED.get(field)}`; warns)"


def update(page: Path, app_models: Sequence[type[BaseSettings]] = ()) -> bool:
    """Write the table into `page`, between its markers; True if it changed."""
    text = page.read_text()
    table = settings_table(app_models)
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    new, found = pattern.subn(lambda _: f"{BEGIN}\n{table}\n{END}", text)
    if not found:  # rather than report "up to date" for a table that is nowhere
        raise ValueError(f"{page} has no {BEGIN} ... {END} markers to write the table between")
    page.write_text(new)
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    models = [resolve_name(name) for name in (sys.argv[1:] if argv is None else argv)]
    try:
        changed = update(PAGE, models)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{PAGE} updated" if changed else f"{PAGE} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
