"""The container image, compose and Kubernetes files, checked as far as a machine without a
container engine allows: linters and schemas, what they promise, and the image's start command
run for real on this machine's environment."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.settings import Settings as AppSettings
from launchers.settings import Settings
from launchers.workers import worker_count
from tests.servers import ROOT, SAMPLE_APP, serve
from tests.test_workers import fake_v2
from tests.tools import uv

KUBERNETES = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent


def dockerfile() -> str:
    # Continuation lines joined: one instruction per line.
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def instructions(name: str) -> list[str]:
    return [
        line.split(None, 1)[1] for line in dockerfile().splitlines() if line.startswith(name + " ")
    ]


def image_env() -> dict[str, str]:
    env = instructions("ENV")[-1]  # the final stage's, which the container runs with
    return dict(shlex.split(pair)[0].split("=", 1) for pair in re.findall(r"\S+=\S+", env))


def manifests() -> dict[str, dict[str, Any]]:
    return {
        doc["kind"]: doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    }


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [BIN / "hadolint", ROOT / "Dockerfile"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_the_launcher_as_a_non_root_user() -> None:
    stages = dockerfile().split("\nFROM ")
    assert len(stages) == 4, "uv, build, and the final stage"
    assert not re.search(r"\buv\b", stages[-1]), "the build tools stay behind"
    (cmd,) = instructions("CMD")
    assert json.loads(cmd) == ["python", "-m", "launchers"], "exec form, through the launcher"
    (user,) = instructions("USER")
    assert user.isdigit(), "a numeric uid, so that Kubernetes can check runAsNonRoot"
    assert int(user) != 0
    lines = dockerfile().splitlines()
    assert lines.index(f"USER {user}") < lines.index(f"CMD {cmd}")
    # Dependencies are installed before the code is copied: their layer survives code changes.
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY . "))
    deps = next(i for i, line in enumerate(lines) if "--no-install-project" in line)
    assert deps < code
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert image_env()["HOST"] == "0.0.0.0"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".tools", ".env", "data", "certs", "devtls", "tests"} <= set(ignored)


def test_the_image_command_serves_here(tmp_path: Path) -> None:
    """The image's CMD and HEALTHCHECK, run with the environment the image sets."""
    env = {k: v for k, v in image_env().items() if k != "PATH"} | {"HOST": "127.0.0.1"}
    argv = [
        sys.executable if word == "python" else word for word in json.loads(instructions("CMD")[0])
    ]
    env.pop("PORT")  # serve() picks a free one
    env.setdefault("APP", SAMPLE_APP)  # the image serves the sample unless it says otherwise
    with serve(argv, tmp_path, "/healthz", 30, None, **env) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(server.url + "/demo/sleep").status_code == 404, "demo endpoints off"
        port = str(server.port)
        check = json.loads(instructions("HEALTHCHECK")[0].split("CMD", 1)[1])
        check[0] = sys.executable
        result = subprocess.run(check, env={"PORT": port}, capture_output=True, timeout=10)
        assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in server.output().splitlines()]  # LOG_FORMAT=json
    assert [line for line in lines if line["event"].startswith("uvicorn: serving app.main:app")]


def test_kubernetes_manifests_validate_offline() -> None:
    validate(KUBERNETES)


def validate(manifests: Path) -> None:
    """Every manifest under `manifests` against the Kubernetes schemas, offline."""
    files = sorted(manifests.glob("*.yaml"))
    result = subprocess.run(
        [BIN / "kubernetes-validate", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files)


def pod_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_deployment_probes_grace_and_one_worker_per_pod(tmp_path: Path) -> None:
    found = manifests()
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(found)
    # An explicit tag, the project's version: what runs is what was built and released.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for c in pod_containers(found["Deployment"])}
    assert {image.rpartition(":")[2] for image in images} == {version}
    pod = found["Deployment"]["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {item["name"]: item.get("value") for item in app["env"]}
    assert "WEB_CONCURRENCY" not in env, "the CPU limit decides, through the worker formula"
    pause = int(app["lifecycle"]["preStop"]["sleep"]["seconds"])
    assert pod["terminationGracePeriodSeconds"] > pause + int(env["GRACEFUL_TIMEOUT"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Migrations once, in the init container, not by each worker.
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["python", "-m", "launchers.migrate"]
    assert env["MIGRATE"] == "false"
    # The pod's CPU limit, as the kernel shows it inside the container, gives one worker.
    cpus = float(app["resources"]["limits"]["cpu"])
    root = fake_v2(tmp_path, {"/": f"{int(cpus * 100_000)} 100000"})
    assert worker_count(Settings(), root, affinity=64).count == 1


def test_compose_runs_several_gunicorn_workers_with_postgresql() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    app = compose["services"]["app"]
    assert app["environment"]["LAUNCHER"] == "gunicorn"
    assert int(app["environment"]["WEB_CONCURRENCY"]) > 1
    if "db" in compose["services"]:  # the sample's database, until it is replaced
        assert app["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert app["depends_on"]["db"]["condition"] == "service_healthy"
    grace = int(app["stop_grace_period"].removesuffix("s"))
    assert grace > int(app["environment"]["GRACEFUL_TIMEOUT"])
    tls = compose["services"]["app-tls"]
    assert "./certs:/certs:ro" in tls["volumes"]
    assert tls["environment"]["TLS_KEYFILE"].startswith("/certs/")
    # Every setting named in compose is one the settings model knows.
    known = {name.upper() for model in (Settings, AppSettings) for name in model.model_fields}
    assert set(tls["environment"]) <= known


def test_one_uv_version_for_the_makefile_and_the_image() -> None:
    makefile = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    image = re.search(r"^ARG UV_IMAGE=ghcr.io/astral-sh/uv:(\S+)$", dockerfile(), re.MULTILINE)
    assert makefile
    assert image
    assert makefile[1] == image[1]


def test_the_lock_is_current() -> None:
    """What `uv sync --locked` checks in every install: CI fails on a stale lock."""
    checked = subprocess.run(
        [uv(), "lock", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr


def test_ci_workflow_and_dependabot_validate_offline() -> None:
    """Against the schemas check-jsonschema carries: GitHub's workflows, Dependabot's file."""
    for schema, path in [
        ("vendor.github-workflows", ROOT / ".github" / "workflows" / "ci.yml"),
        ("vendor.dependabot", ROOT / ".github" / "dependabot.yml"),
    ]:
        checked = subprocess.run(
            [BIN / "check-jsonschema", "--builtin-schema", schema, path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run") for job in workflow["jobs"].values() for step in job["steps"]]
    assert runs[-2:] == ["make lint", ".ci/run"], "what CI runs here, and nothing else"
    updates = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())["updates"]
    assert {update["package-ecosystem"] for update in updates} == {"uv", "docker", "github-actions"}
