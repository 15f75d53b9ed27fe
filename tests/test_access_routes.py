"""The route label of the access log and the metrics: a route template whenever a route answered,
FastAPI's own or a plain starlette one (/docs, /openapi.json), `unmatched` only when none did."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.scrape import parse
from tests.servers import launcher, serve, wait_for


def test_docs_and_schema_are_counted_under_their_own_route(tmp_path: Path) -> None:
    with serve(
        launcher("uvicorn"),
        tmp_path,
        APP="tests.kitapp:app",
        WEB_CONCURRENCY="1",
        LOG_FORMAT="json",
    ) as server:
        assert httpx.get(server.url + "/docs").status_code == 200
        assert httpx.get(server.url + "/openapi.json").status_code == 200
        assert httpx.get(server.url + "/sleep", params={"seconds": 0}).status_code == 200
        assert httpx.get(server.url + "/no-such-page").status_code == 404

        def counted(route: str, status: int) -> float:
            samples = parse(httpx.get(server.url + "/metrics").text)
            labels = (("method", "GET"), ("route", route), ("status", str(status)))
            return samples.get(("http_requests_total", labels), 0.0)

        # A request is counted as it ends, which may come just after its answer is out: once the
        # last one is, they all are.
        wait_for(lambda: counted("unmatched", 404) == 1, what="the requests to be counted")
        assert counted("/docs", 200) == 1
        assert counted("/openapi.json", 200) == 1
        assert counted("/sleep", 200) == 1
        assert counted("unmatched", 200) == 0, "a route answered: it has a name"

        def logged() -> dict[str, tuple[str, int]]:
            lines = [
                json.loads(line) for line in server.output().splitlines() if line.startswith("{")
            ]
            return {
                line["path"]: (line["route"], line["status"])
                for line in lines
                if line.get("event") == "request"
            }

        wait_for(lambda: "/no-such-page" in logged(), what="the access log line of the 404")
        routes = logged()
    assert routes["/docs"] == ("/docs", 200)
    assert routes["/openapi.json"] == ("/openapi.json", 200)
    assert routes["/no-such-page"] == ("unmatched", 404)
