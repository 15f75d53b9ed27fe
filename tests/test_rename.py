"""`make rename NAME=...`, run in a copy of the tree: the service's name changes everywhere it is
spelled and nothing else does; the app still imports and the manifests still validate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.servers import ROOT, is_setting
from tests.test_deploy import validate
from tests.tools import uv

BIN = Path(sys.executable).parent
# Read, never spelled here: this file must pass in a tree renamed already.
CURRENT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]


def unused(name: str) -> bool:
    """Whether the tree's code spells `name` nowhere (the rename refuses a name it does)."""
    spellings = [f"-e{name}", f"-e{name.replace('-', '_')}"]
    # Prose and the rename's own files may spell examples.
    skipped = [":(exclude)*.md", ":(exclude)scripts/rename.py", ":(exclude)tests/test_rename.py"]
    found = subprocess.run(
        ["git", "grep", "-q", "-F", *spellings, "--", ".", *skipped], cwd=ROOT, check=False
    )
    return found.returncode == 1


# A name the tree does not spell yet, even once renamed to the README's example.
NEW = next(
    name
    for name in ("billing-api", "ledger-service", "inventory-api", "orders-svc")
    if name != CURRENT and unused(name)
)
SPELLINGS = {CURRENT: NEW, CURRENT.replace("-", "_"): NEW.replace("-", "_")}


def copy_of_the_tree(destination: Path) -> Path:
    """The files git would commit: tracked ones and new ones it does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not one deleted in the work tree since
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def env_in(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_setting(k)}
    return env | {"PYTHONPATH": str(copy), "PYTHONUNBUFFERED": "1"}


def run(copy: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=copy,
        env=env_in(copy),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(240)
def test_rename_changes_the_name_and_nothing_else(tmp_path: Path) -> None:
    copy = copy_of_the_tree(tmp_path / "copy")
    before = files(copy)
    assert any(CURRENT.encode() in content for content in before.values())

    renamed = run(copy, "scripts/rename.py", NEW)
    assert renamed.returncode == 0, renamed.stderr
    after = files(copy)
    assert set(after) == set(before), "no file made or removed"
    for name, content in before.items():
        expected = content
        for old, new in SPELLINGS.items():
            expected = expected.replace(old.encode(), new.encode())
        assert after[name] == expected, f"{name}: more than the name changed"
        for old in SPELLINGS:
            assert old.encode() not in after[name], f"{name} still spells {old}"
    assert "rename: pyproject.toml" in renamed.stdout

    # Where the name is expected: the package, the compose project, the docs, the manifests.
    assert tomllib.loads((copy / "pyproject.toml").read_text())["project"]["name"] == NEW
    assert yaml.safe_load((copy / "compose.yaml").read_text())["name"] == NEW
    assert yaml.safe_load((copy / "mkdocs.yml").read_text())["site_name"] == NEW
    deployment = yaml.safe_load((copy / "deploy/kubernetes/deployment.yaml").read_text())
    assert deployment["metadata"]["name"] == NEW
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": NEW}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith(f"ghcr.io/example/{NEW}:")
    assert f"docker build -t {NEW} ." in (copy / "README.md").read_text()

    # The running code reads the new name: the app's title (OpenTelemetry's service name).
    imported = run(
        copy,
        "-c",
        "import app.main; print(app.main.__file__, app.main.app.title)",
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == [str(copy / "app" / "main.py"), NEW]
    # The kit spells no service name: an upgrade of it is a plain comparison of one folder.
    assert not [name for name in renamed.stdout.split() if name.startswith("launchers/")]

    # The development CA is made under the new name.
    made = run(copy, "-m", "devtls.certs", str(tmp_path / "certs"))
    assert made.returncode == 0, made.stderr
    ca = x509.load_pem_x509_certificate((tmp_path / "certs" / "ca.pem").read_bytes())
    (organisation,) = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert organisation.value == f"{NEW} development CA"

    validate(copy / "deploy" / "kubernetes")
    # uv.lock names the project too: renamed with it, it still matches pyproject.toml.
    locked = subprocess.run(
        [uv(), "lock", "--check"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert locked.returncode == 0, locked.stderr

    again = run(copy, "scripts/rename.py", NEW)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert files(copy) == after


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Billing_API", "NAME='Billing_API' is not a service name"),
        ("", "NAME='' is not a service name"),
        ("-billing", "NAME='-billing' is not a service name"),
        # Spelled in the tree for other things already: renaming again could not tell them apart.
        ("app", "NAME='app' is spelled in the tree already"),
    ],
)
def test_a_bad_name_is_refused_in_one_line(tmp_path: Path, name: str, problem: str) -> None:
    copy = copy_of_the_tree(tmp_path / "copy")
    before = files(copy)
    refused = run(copy, "scripts/rename.py", "--", name)  # as `make rename` passes it
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"error: {problem}"), line
    assert refused.stdout == ""
    assert files(copy) == before
