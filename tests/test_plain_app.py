"""An app that never calls `launchers.features.install` still serves under every launcher, which
says once, at start, what it lacks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from launchers import LAUNCHERS
from tests.scrape import FRESH
from tests.servers import Server, launcher, serve, wait_for

LACKING = "does not call launchers.features.install"
# fastapi-cli runs `fastapi run` as it is: no code of the kit runs in its workers, so nothing
# there can notice the missing call. The gap is known: that launcher serves without the warning.
NO_KIT_IN_WORKERS = {"fastapi-cli"}


def _both_workers_served(server: Server) -> bool:
    pids = {httpx.get(server.url + "/info", headers=FRESH).json()["pid"] for _ in range(20)}
    return len(pids) == 2


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_an_app_without_the_features_serves_and_is_named_once(name: str, tmp_path: Path) -> None:
    with serve(
        launcher(name), tmp_path, ready="/info", APP="tests.plainapp:app", WEB_CONCURRENCY="2"
    ) as server:
        assert httpx.get(server.url + "/healthz").status_code == 404, "no probes: not installed"
        # Each worker has imported the app, and said what it had to, once both have answered.
        wait_for(lambda: _both_workers_served(server), 20, "both workers serving")
        if name in NO_KIT_IN_WORKERS:
            assert LACKING not in server.output()
        else:
            wait_for(lambda: LACKING in server.output(), 10, "the warning")
            assert server.output().count(LACKING) == 1, server.output()
            assert "APP=tests.plainapp:app does not call" in server.output()
