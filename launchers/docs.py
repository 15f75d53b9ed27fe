"""The README's settings table, made from the `Settings` declarations and each launcher's OPTIONS.

`make docs` writes it into README.md between the markers; a test fails when the two differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from app.settings import Settings
from launchers import LAUNCHERS, load
from launchers.command import Launcher
from launchers.preflight import server_settings

BEGIN, END = "<!-- settings-table: begin -->", "<!-- settings-table: end -->"


def settings_table() -> str:
    launchers = {name: load(name) for name in LAUNCHERS}
    server = server_settings()
    header = ["Variable", "Default", "Meaning", *launchers]
    rows = [header, ["---"] * len(header)]
    for field, info in Settings.model_fields.items():
        row = [f"`{field.upper()}`", _value(info.default), info.description or ""]
        for launcher in launchers.values():
            row.append(_native(field, launcher) if field in server else "·")
        rows.append(row)
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


def update(readme: Path) -> bool:
    """Write the table into `readme`; True if it changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    new = pattern.sub(lambda _: f"{BEGIN}\n{settings_table()}\n{END}", text)
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    sys.exit(print("README.md updated" if update(Path("README.md")) else "README.md up to date"))
