"""The image, built from the Dockerfile with podman, on base images made here.

No container registry can be reached from the machines this suite runs on, so the Dockerfile's two
base images are replaced by local ones (`--build-arg`): Debian with its Python, made by mmdebstrap
from Debian's packages, for `PYTHON_IMAGE`; the pinned uv, from PyPI, for `UV_IMAGE`. Each is made
once per machine and reused. Where podman cannot run, the tests skip and say why; under CI they
fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.tools import uv

DEBIAN = "trixie"  # the current Debian; its Python is the image's
BASE = f"localhost/debian-python:{DEBIAN}"
IMAGE = "localhost/app-under-test:latest"
# A runtime and cgroup manager that work in unprivileged sandboxes and CI runners alike, and no
# default ulimits, which such a sandbox may not let a container raise.
CONF = "[containers]\ndefault_ulimits = []\n"
BUILD_TIMEOUT = 600
MEASURED: list[str] = []  # what the image tests measured, printed at the end of the run


def unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Podman:
    conf: Path

    def argv(self, *args: str) -> list[str]:
        runtime = ["--runtime", "runc"] if shutil.which("runc") else []
        return ["podman", *runtime, "--cgroup-manager", "cgroupfs", *args]

    def env(self) -> dict[str, str]:
        return os.environ | {"CONTAINERS_CONF": str(self.conf)}

    def __call__(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args), env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0


def engine(directory: Path) -> Podman:
    """podman, once it has shown it can run a container here."""
    if not shutil.which("podman"):
        unavailable("podman is not installed (.ci/run installs it)")
    conf = directory / "containers.conf"
    conf.write_text(CONF)
    podman = Podman(conf)
    base = base_image(podman, directory)
    ran = podman("run", "--rm", "--network=none", base, "python3", "-c", "print(1)", check=False)
    if ran.returncode != 0:
        unavailable(f"podman cannot run a container here: {ran.stderr.strip()}")
    return podman


def base_image(podman: Podman, directory: Path) -> str:
    """Debian with python3 (`python` too) and its CA certificates: the official slim image's part
    in the Dockerfile, made from Debian's packages."""
    if podman.exists(BASE):
        return BASE
    if not shutil.which("mmdebstrap"):
        unavailable("mmdebstrap is not installed (.ci/run installs it)")
    tarball = directory / "base.tar"
    made = subprocess.run(
        [
            *["mmdebstrap", "--variant=minbase", "--quiet"],
            "--include=python3,python-is-python3,ca-certificates",
            *[DEBIAN, str(tarball), "http://deb.debian.org/debian"],
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if made.returncode != 0:
        unavailable(f"mmdebstrap could not make the base image: {made.stderr.strip()[-500:]}")
    podman("import", str(tarball), BASE, timeout=120)
    tarball.unlink()
    return BASE


def uv_image(podman: Podman, directory: Path) -> str:
    """The uv of the Dockerfile's UV_IMAGE, in an image of its own as uv's images hold it."""
    version = re.search(r"ARG UV_IMAGE=\S+:(\S+)", (ROOT / "Dockerfile").read_text())
    assert version is not None, "the Dockerfile pins uv's image"
    tag = f"localhost/uv:{version[1]}"
    if podman.exists(tag):
        return tag
    context = directory / "uv"
    context.mkdir()
    ours = subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True)
    if ours.stdout.split()[1] == version[1]:
        shutil.copy(uv(), context / "uv")
    else:  # the Makefile's uv is another version: the Dockerfile's, from PyPI
        target = ["--target", str(context / "wheel"), f"uv=={version[1]}"]
        subprocess.run(
            [uv(), "pip", "install", "--quiet", "--python", sys.executable, *target],
            check=True,
            timeout=120,
        )
        shutil.copy(context / "wheel" / "bin" / "uv", context / "uv")
    (context / "Containerfile").write_text("FROM scratch\nCOPY uv /uv\n")
    podman("build", "--quiet", "-t", tag, str(context), timeout=120)
    return tag


@dataclass
class Built:
    image: str
    base: str
    uv: str
    log: str  # what the build printed


def build(podman: Podman, base: str, uv: str, context: Path = ROOT) -> Built:
    """The Dockerfile, built as CI would, with the machine's CA certificates readable by the
    steps that download (a proxy's CA among them)."""
    certs = (
        ["--volume", "/etc/ssl/certs:/etc/ssl/certs:ro"] if Path("/etc/ssl/certs").is_dir() else []
    )
    built = podman(
        *["build", "--format", "docker", "--network=host", *certs, "--layers"],
        *["--build-arg", f"PYTHON_IMAGE={base}", "--build-arg", f"UV_IMAGE={uv}"],
        *["-t", IMAGE, "-f", str(ROOT / "Dockerfile"), str(context)],
        timeout=BUILD_TIMEOUT,
    )
    return Built(IMAGE, base, uv, built.stdout + built.stderr)


@dataclass
class Container:
    podman: Podman
    name: str
    url: str = ""

    def logs(self) -> str:
        done = self.podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def inspect(self, template: str) -> str:
        return self.podman("inspect", "--format", template, self.name).stdout.strip()


@contextmanager
def run_detached(podman: Podman, name: str, *args: str) -> Iterator[Container]:
    """A container started in the background, removed at the end whatever happens."""
    podman("rm", "--force", "--ignore", name, check=False)
    podman("run", "--detach", "--name", name, *args)
    try:
        yield Container(podman, name)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
