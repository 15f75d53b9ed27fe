"""Whatever a client sends, within the app's own OpenAPI schema or not, no answer is a 5xx.

Schemathesis generates requests from `/openapi.json` (valid and invalid ones, integers of any
size among them) and sends them over real sockets to a real server, on SQLite and on the
PostgreSQL of TEST_DATABASE_URL. The slow `/demo/*` endpoints are left out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error

from app.main import build_app
from app.settings import Settings
from launchers.settings import Settings as ServerSettings
from tests.databases import empty
from tests.servers import SAMPLE_APP, Server, launcher, serve

# Hypothesis keeps its caches in `.hypothesis/` of the working directory at import, the clone's:
# tests never write there.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"hypothesis-{os.getuid()}")

EXAMPLES = 60  # per operation: a bounded run, fast enough for every `make test`


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    empty(database)
    workdir: Path = tmp_path_factory.mktemp("schema")
    with serve(
        launcher("uvicorn"), workdir, APP=SAMPLE_APP, WEB_CONCURRENCY="1", DATABASE_URL=database
    ) as s:
        yield s


# The document the server serves, made by the same code (a test below checks that it is): the
# operations must be known when pytest collects, before any server runs.
DOCUMENT = build_app(Settings(_env_file=None), ServerSettings(_env_file=None)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path_regex="^/demo/")


def test_the_schema_is_the_served_one(server: Server) -> None:
    assert httpx.get(server.url + "/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared CI machine: response time is not what is tested here
    database=None,  # nothing written under the working directory
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error(case: schemathesis.Case[Any], server: Server) -> None:
    case.call_and_validate(base_url=server.url, checks=[not_a_server_error])
