"""The wheel the image installs: every module of the kit and the sample, found by package discovery,
a new one too, with the sample's migrations, importable from the wheel alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.servers import ROOT, is_setting
from tests.tools import uv

PACKAGES = ("app", "launchers")  # devtls is development only: `make certs`
# Left out as the image's build context leaves them out (.dockerignore), and local caches.
NOT_SOURCE = (".git", ".venv", "__pycache__", "*.egg-info", "build", "data", "certs", ".*cache")
# Entry points and Alembic's script: run, never imported (`launchers/__main__.py` serves).
RUN_NOT_IMPORTED = {"__main__", "env"}

WALK = """
import importlib, pkgutil, sys
site = sys.argv[1]
for info in pkgutil.walk_packages([site]):
    if info.name.rpartition(".")[2] in {skip!r}:
        continue
    module = importlib.import_module(info.name)
    assert (module.__file__ or "").startswith(site), (info.name, module.__file__)
    print(info.name)
"""


def modules_of(files: list[str]) -> set[str]:
    """Dotted names of the Python modules among `files` (paths with / separators)."""
    return {
        name.removesuffix(".__init__")
        for path in files
        if path.endswith(".py") and "/versions/" not in path
        for name in [path.removesuffix(".py").replace("/", ".")]
    }


def source_files(root: Path) -> list[str]:
    return [
        path.relative_to(root).as_posix()
        for package in PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]


def env_for(site: Path) -> dict[str, str]:
    # Only the wheel's files on the path: neither the repository nor the tests.
    env = {k: v for k, v in os.environ.items() if not is_setting(k) and k != "PYTHONPATH"}
    return env | {"PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


@pytest.mark.timeout(180)
def test_the_wheel_holds_every_module_and_a_new_one_without_an_edit(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    # What a user adds, with no edit to pyproject.toml: a subpackage, a package of their own.
    (source / "app" / "routers").mkdir()
    (source / "app" / "routers" / "__init__.py").write_text("")
    (source / "app" / "routers" / "things.py").write_text("THINGS = 1\n")
    (source / "billing").mkdir()
    (source / "billing" / "__init__.py").write_text("")
    (source / "billing" / "api.py").write_text("from app.routers.things import THINGS\n")

    built = subprocess.run(
        [uv(), "build", "--wheel", "--quiet", "--out-dir", tmp_path, source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        names = [name for name in archive.namelist() if ".dist-info/" not in name]

    expected = {*source_files(ROOT), "app/routers/things.py", "billing/api.py"}
    assert expected <= set(names), f"not in the wheel: {sorted(expected - set(names))}"
    versions = [path for path in source_files(ROOT) if "/migrations/versions/" in path]
    assert set(versions) <= set(names)  # data files too: Alembic's revisions
    sample_migrations = (ROOT / "app" / "migrations").is_dir()  # gone once the sample is replaced
    if sample_migrations:
        assert versions, "the sample's migrations are found"
        assert "app/migrations/script.py.mako" in names
    left_out = ("tests", "bench", "scripts", "devtls")  # development only
    assert not [name for name in names if name.split("/")[0] in left_out]

    workdir = tmp_path / "elsewhere"  # not the repository: nothing is found from the cwd
    workdir.mkdir()
    walked = subprocess.run(
        [sys.executable, "-c", WALK.format(skip=RUN_NOT_IMPORTED), str(site)],
        cwd=workdir,
        env=env_for(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert walked.returncode == 0, walked.stderr
    imported = set(walked.stdout.split())
    wanted = {name for name in modules_of(names) if name.rpartition(".")[2] not in RUN_NOT_IMPORTED}
    assert wanted <= imported
    assert {"launchers.features.access", "launchers.uvicorn.protocol", "billing.api"} <= imported

    if not sample_migrations:
        return
    # The migrations, run from the wheel's files: Alembic finds its script and the versions.
    migrated = subprocess.run(
        [sys.executable, "-m", "launchers.migrate"],
        cwd=workdir,
        env=env_for(site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "Running upgrade  -> 0001" in migrated.stdout + migrated.stderr
    assert (workdir / "data" / "app.db").exists()
