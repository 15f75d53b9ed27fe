"""The tools the tests drive besides the servers: uv, as the Makefile chose it."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.servers import ROOT


def uv() -> str:
    """The uv that `make` uses (it passes UV), else one on PATH, else the Makefile's own copy."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:  # a path, relative to the repository as the Makefile's own; or a command's name
        return str(ROOT / found) if os.sep in found else found
    pinned = ROOT / ".tools" / "uv" / "bin" / "uv"
    if not pinned.exists():
        pytest.skip("no uv: run the suite with `make test`, which installs it")
    return str(pinned)
