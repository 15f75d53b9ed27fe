"""The image, built and run for real with podman: locked dependencies in a layer of their own, a
non-root user on a read-only root, its health check, a drain on `podman stop`, a bad setting
refused in one paragraph, its size (printed at the end of the run), and the Kubernetes pod spec
run by `podman kube play`."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests import podman as engine
from tests.podman import MEASURED, Built, Container, Podman
from tests.scrape import scrape
from tests.servers import ROOT, free_port, wait_for
from tests.test_deploy import manifests
from tests.test_rename import copy_of_the_tree

pytestmark = pytest.mark.timeout(900)

SLOW = 16  # requests in flight when the container is stopped
STOP_TIMEOUT = 30  # podman stop's grace before SIGKILL
IN_PROGRESS = ("http_requests_in_progress", ())
# The image's HEALTHCHECK kept, without the systemd timer podman would ask for to repeat it:
# `podman healthcheck run` runs it once.
NO_TIMER = ["--health-interval=disable"]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return engine.engine(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def built(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Built:
    directory = tmp_path_factory.mktemp("images")
    base = engine.base_image(podman, directory)
    return engine.build(podman, base, engine.uv_image(podman, directory))


@contextmanager
def serving(podman: Podman, built: Built, name: str, *env: str) -> Iterator[Container]:
    """The image as the Kubernetes manifest runs it: a read-only root, a writable /tmp, its port
    told through PORT (on the host's network: a sandbox may have no other)."""
    port = free_port()
    args = ["--network=host", "--read-only", "--tmpfs", "/tmp:rw,size=64m", *NO_TIMER]
    settings = ["HOST=127.0.0.1", f"PORT={port}", "DATABASE_URL=sqlite:////tmp/app.db", *env]
    args += [arg for setting in settings for arg in ("--env", setting)]
    with engine.run_detached(podman, name, *args, built.image) as container:
        container.url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(container), 60, f"{name} serving")
        yield container


def _answers(container: Container) -> bool:
    if container.inspect("{{.State.Running}}") != "true":
        raise AssertionError(f"the container stopped:\n{container.logs()}")
    try:
        return httpx.get(f"{container.url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_dependencies_are_locked_and_cached_apart_from_the_code(
    podman: Podman, built: Built, tmp_path: Path
) -> None:
    assert (ROOT / "Dockerfile").read_text().count("uv sync --locked") == 2
    # A change to the code only: the dependencies' layer comes from the cache.
    copy = copy_of_the_tree(tmp_path / "copy")
    # Different at every run: layers stay cached from one run to the next.
    (copy / "app" / "added.py").write_text(f"ADDED = {uuid.uuid4().hex!r}\n")
    again = engine.build(podman, built.base, built.uv, copy)
    steps = re.split(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: ", again.log, flags=re.MULTILINE)
    (dependencies,) = [step for step in steps if "--no-install-project" in step.split("\n")[0]]
    assert "Using cache" in dependencies, again.log
    (project,) = [step for step in steps if "--no-editable" in step.split("\n")[0]]
    assert "Using cache" not in project, "the code's layer is built again"


def test_it_serves_as_uid_10001_on_a_read_only_root(podman: Podman, built: Built) -> None:
    with serving(podman, built, "image-serves") as container:
        assert httpx.get(f"{container.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{container.url}/readyz").json() == {"status": "ready"}
        info = httpx.get(f"{container.url}/info").json()
        assert (info["launcher"], info["tls"]) == ("uvicorn", False)
        assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
        assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        refused = podman("exec", container.name, "touch", "/srv/written", check=False)
        assert refused.returncode != 0
        assert "Read-only file system" in refused.stderr
        # The image's own HEALTHCHECK command, run inside the container.
        checked = podman("healthcheck", "run", container.name, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_podman_stop_drains_the_requests_in_flight(podman: Podman, built: Built) -> None:
    with serving(podman, built, "image-drains", "DEMO_ENDPOINTS=true") as container:

        async def stop_under_load() -> tuple[list[int], float]:
            async with httpx.AsyncClient(timeout=STOP_TIMEOUT) as client:
                slow = [
                    asyncio.create_task(client.get(f"{container.url}/demo/sleep?seconds=2"))
                    for _ in range(SLOW)
                ]
                # In flight: every slow one, and the scrape that counts them.
                while (await asyncio.to_thread(scrape, container.url)).get(IN_PROGRESS) != SLOW + 1:
                    await asyncio.sleep(0.05)
                began = time.monotonic()
                stopping = asyncio.create_task(
                    asyncio.to_thread(podman, "stop", "--time", str(STOP_TIMEOUT), container.name)
                )
                responses = await asyncio.gather(*slow)
                await stopping
                return [response.status_code for response in responses], time.monotonic() - began

        statuses, seconds = asyncio.run(stop_under_load())
        assert statuses == [200] * SLOW
        assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
        assert seconds < STOP_TIMEOUT / 2, "drained, not killed at the stop timeout"
        MEASURED.append(
            f"podman stop with {SLOW} slow requests in flight: all 200, exit 0 in {seconds:.1f} s"
        )


def test_a_bad_setting_exits_with_one_paragraph(podman: Podman, built: Built) -> None:
    args = ["--network=none", "--read-only", *NO_TIMER, "--env", "WEB_CONCURRENCY=abc"]
    with engine.run_detached(podman, "image-refuses", *args, built.image) as container:
        exited = podman("wait", container.name, timeout=60).stdout.strip()
        assert exited == "2"
        # What the container wrote, without podman's own lines.
        assert container.logs() == (
            "error: bad configuration: WEB_CONCURRENCY='abc' is not a whole number.\n"
        )


def test_the_image_holds_the_runtime_only(podman: Podman, built: Built) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", built.image).stdout)
    shell = ["run", "--rm", "--network=none", "--entrypoint", "sh", built.image, "-c"]
    venv = int(podman(*shell, "du -sk /venv").stdout.split()[0]) * 1024
    packages = podman(*shell, "du -sk /venv/lib/python3*/site-packages/* | sort -rn").stdout
    sizes = {
        Path(path).name: int(kib) / 1024 for kib, path in map(str.split, packages.splitlines())
    }
    largest = ", ".join(f"{name} {mib:.0f}" for name, mib in list(sizes.items())[:8])
    MEASURED.append(
        f"image: {size / 2**20:.0f} MiB on {built.base}, /venv {venv / 2**20:.0f} MiB "
        f"(largest, MiB: {largest})"
    )
    development = {"pip", "setuptools", "pytest", "ruff", "mypy", "trustme", "devtls", "tests"}
    assert not development & {name.split("-")[0] for name in sizes}
    assert venv < 150 * 2**20, "runtime dependencies only (docs/deployment.md: what each weighs)"


def test_the_kubernetes_pod_plays_under_podman(
    podman: Podman, built: Built, postgresql: str, tmp_path: Path
) -> None:
    """deploy/kubernetes/'s pod, as `podman kube play` runs it: the init container migrates the
    suite's PostgreSQL, the app serves on a read-only root and stops cleanly."""
    deployment = manifests()["Deployment"]
    template = deployment["spec"]["template"]
    spec = copy.deepcopy(template["spec"])
    # What the sandbox needs, and nothing of the pod's behaviour: the image built here; the host's
    # network (the suite's PostgreSQL listens on 127.0.0.1), so a free port and numbered probes;
    # a Pod rather than the Deployment, whose init container podman 4.3 restarts without end
    # (containers/podman#16343), kept once it exits so that its exit code can be read.
    port = free_port()
    spec |= {"hostNetwork": True, "restartPolicy": "OnFailure"}
    for container in [*spec["initContainers"], *spec["containers"]]:
        container["image"] = built.image
    (app,) = spec["containers"]
    del app["ports"]
    app["env"] += [{"name": "PORT", "value": str(port)}, {"name": "HOST", "value": "127.0.0.1"}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        app[probe]["httpGet"]["port"] = port
    name = deployment["metadata"]["name"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": template["metadata"]["labels"],
            "annotations": {"io.podman.annotations.init.container.type": "always"},
        },
        "spec": spec,
    }
    played = tmp_path / "pod.yaml"
    played.write_text(yaml.safe_dump(pod))
    # The database secret the manifest names, as podman keeps a Kubernetes secret.
    (reference,) = [item["valueFrom"]["secretKeyRef"] for item in app["env"] if "valueFrom" in item]
    secret = tmp_path / "secret.json"
    secret.write_text(
        json.dumps({reference["key"]: base64.b64encode(postgresql.encode()).decode()})
    )
    podman("secret", "rm", reference["name"], check=False)
    podman("secret", "create", reference["name"], str(secret))
    try:
        podman("kube", "play", str(played), timeout=120)
        url = f"http://127.0.0.1:{port}"
        migrate = Container(podman, f"{name}-{spec['initContainers'][0]['name']}")
        served = Container(podman, f"{name}-{app['name']}", url)
        wait_for(lambda: _answers(served), 60, "the pod serving")
        assert migrate.inspect("{{.State.ExitCode}}") == "0"
        assert "Running upgrade  -> 0001" in migrate.logs()
        assert "Running upgrade" not in served.logs(), "MIGRATE=false: the init container did it"
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}
        created = httpx.post(f"{url}/notes", json={"text": "from the pod"})
        assert created.status_code == 201
        assert podman("exec", served.name, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", served.name, "touch", "/srv/x", check=False).returncode != 0
        assert podman("exec", served.name, "touch", "/tmp/x", check=False).returncode == 0
        grace = str(spec["terminationGracePeriodSeconds"])
        began = time.monotonic()
        podman("pod", "stop", "--time", grace, name, timeout=int(grace) + 30)
        seconds = time.monotonic() - began
        assert served.inspect("{{.State.ExitCode}}") == "0", served.logs()
        assert seconds < int(grace), "drained, not killed at the grace period's end"
    finally:
        podman("kube", "down", str(played), check=False, timeout=120)
        podman("secret", "rm", reference["name"], check=False)
