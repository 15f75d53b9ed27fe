"""The docs: the settings table in docs/settings.md is the one generated from the settings models
(the kit's, then the sample's), and the site builds with mkdocs in strict mode."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings
from launchers.docs import BEGIN, END, PAGE, settings_table, update
from tests.servers import ROOT, clean_env

# What a page loads from elsewhere (a web font, a script): the site must need no network.
FETCHED = re.compile(r"<(?:link|script|img)\b[^>]*\b(?:href|src)=\"(https?:)?//[^\"]*\"")


def test_settings_table_is_current() -> None:
    page = (ROOT / PAGE).read_text()
    table = page.split(BEGIN)[1].split(END)[0].strip()
    assert table == settings_table([Settings]), "run `make docs`"


def test_a_page_without_the_markers_is_named_not_left_alone(tmp_path: Path) -> None:
    page = tmp_path / "settings.md"
    page.write_text("# Settings\n")
    with pytest.raises(ValueError, match=r"settings\.md has no"):
        update(page)
    page.write_text(f"# Settings\n\n{BEGIN}\n{END}\n")
    assert update(page)
    assert not update(page), "written once, then up to date"


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:10]
    assert any(line.startswith("make run ") for line in head)
    assert any(line.startswith("make test ") for line in head)


@pytest.mark.timeout(120)
def test_the_site_builds_strict_and_fetches_nothing(tmp_path: Path) -> None:
    """mkdocs.yml makes a broken link or anchor, and a page left out of the nav, a warning, and
    `--strict` makes any warning fail the build."""
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        # Material prints a banner about MkDocs 2 on every build otherwise.
        env=clean_env(NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    pages = list(site.rglob("*.html"))
    assert site / "settings" / "index.html" in pages
    assert site / "results" / "reference" / "index.html" in pages, "the bench's reference run"
    fetched = {match[0] for page in pages for match in FETCHED.finditer(page.read_text())}
    assert not fetched, "no font, script or image from another host"


# `tests/test_x.py` or `tests/test_x.py::test_name`, as the README and the docs cite their evidence.
CITED = re.compile(r"tests/(test_\w+\.py)(?:::(\w+))?")


def test_every_test_the_docs_cite_exists() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = {(page.name, *match) for page in pages for match in CITED.findall(page.read_text())}
    assert len(cited) > 20  # the README and the pages back their claims with tests
    missing = []
    for page, module, name in sorted(cited):
        path = ROOT / "tests" / module
        if not path.exists() or (name and f"def {name}(" not in path.read_text()):
            missing.append(f"{page}: tests/{module}" + (f"::{name}" if name else ""))
    assert not missing, "cited but not found: " + ", ".join(missing)
