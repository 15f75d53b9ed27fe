"""The README's settings table is the one generated from the settings models: the kit's, then
the sample's."""

from __future__ import annotations

from app.settings import Settings
from launchers.docs import BEGIN, END, settings_table
from tests.servers import ROOT


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split(BEGIN)[1].split(END)[0].strip()
    assert table == settings_table([Settings]), "run `make docs`"


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:10]
    assert any(line.startswith("make run ") for line in head)
    assert any(line.startswith("make test ") for line in head)
