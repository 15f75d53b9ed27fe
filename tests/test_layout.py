"""The tree's one rule: the kit (`launchers/`, `devtls/`) imports nothing from the sample (`app/`),
so that the sample can be replaced, renamed or deleted, and the kit serves whatever `APP` names."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import httpx
import pytest

from launchers import LAUNCHERS
from tests.servers import ROOT, free_port, launcher, run_launcher, serve

KIT = ("launchers", "devtls")
SAMPLE = "app"


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_kit_imports_nothing_from_the_sample() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for package in KIT
        for path in (ROOT / package).rglob("*.py")
        for name in _imported(path)
        if name == SAMPLE or name.startswith(f"{SAMPLE}.")
    }
    assert not offenders


def test_the_kit_serves_an_app_of_another_package_without_the_sample(tmp_path: Path) -> None:
    """The kit and the kit's test app, copied where there is no `app/` package at all."""
    for package in KIT:
        shutil.copytree(ROOT / package, tmp_path / package)
    (tmp_path / "billing").mkdir()
    shutil.copy(ROOT / "tests" / "kitapp.py", tmp_path / "billing" / "service.py")
    (tmp_path / "billing" / "__init__.py").touch()
    # Found before the editable install's `app`: the kit importing the sample would fail here.
    (tmp_path / "app.py").write_text("raise ImportError('the sample is gone')\n")
    argv = launcher("uvicorn")
    with serve(argv, tmp_path, APP="billing.service:app", WEB_CONCURRENCY="1") as server:
        assert httpx.get(server.url + "/readyz").json() == {"status": "ready"}
        assert httpx.get(server.url + "/sleep?seconds=0").status_code == 200
        assert 'route="/sleep"' in httpx.get(server.url + "/metrics").text
    assert "Running upgrade" not in server.output()  # it has no migrations: none were run
    assert not (tmp_path / "data").exists()


def test_a_setting_of_the_apps_own_draws_no_warning(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BILLING_CURRENCY=EUR\nDATABASE_URL=sqlite:///x.db\n")
    result = run_launcher(tmp_path, "uvicorn", "--print", PYTHONPATH=str(ROOT))
    assert (result.returncode, result.stderr) == (0, "")


def test_an_app_that_cannot_be_found_is_named(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", PYTHONPATH=str(ROOT), APP="billing.main:app")
    assert result.returncode == 2
    assert result.stderr == (
        "error: APP='billing.main:app' cannot be served: No module named 'billing' (run from the "
        "directory that holds it, or install it; APP is module:attribute, e.g. app.main:app).\n"
    )


@pytest.mark.parametrize(
    ("source", "app", "problem"),
    [
        (
            "from fastapi import FastAPI\napi = FastAPI()\n",
            "billing:app",
            "billing.py defines no 'app' (APP is module:attribute, e.g. app.main:app)",
        ),
        ("app = (\n", "billing:app", "billing.py, line 1: '(' was never closed"),
    ],
)
def test_an_attribute_the_module_does_not_define_is_named_before_any_worker(
    tmp_path: Path, source: str, app: str, problem: str
) -> None:
    """Read from the source, not imported: the launcher refuses at once, in every launcher's
    words alike, where each server would fail in its own way (fastapi-cli even exits 0)."""
    (tmp_path / "billing.py").write_text(source)
    for name in LAUNCHERS:
        result = run_launcher(tmp_path, name, APP=app, PORT=str(free_port()))
        assert result.returncode == 2, (name, result)
        assert result.stderr == f"error: APP={app!r} cannot be served: {problem}.\n"
        assert result.stdout == ""


@pytest.mark.parametrize(
    "source",
    [
        "if True:\n    from fastapi import FastAPI as app\n",  # bound in a top-level block
        "from fastapi import FastAPI\ndef __getattr__(name):\n    return FastAPI()\n",
        "from fastapi import *\napp = FastAPI()\n",
        "from fastapi import FastAPI\nglobals()['app'] = FastAPI()\n",
    ],
    ids=["block", "getattr", "star", "globals"],
)
def test_an_attribute_the_source_may_bind_is_left_to_the_server(
    tmp_path: Path, source: str
) -> None:
    (tmp_path / "billing.py").write_text(source)
    result = run_launcher(tmp_path, "uvicorn", "--print", APP="billing:app")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
