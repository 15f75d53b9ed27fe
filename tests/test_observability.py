"""Logs, request ids, metrics and OTLP export across worker processes, on real servers."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.scrape import FRESH, info_count, scrape
from tests.servers import (
    Server,
    free_port,
    launcher,
    running,
    serve,
    serving_pids,
    settled_workers,
    wait_for,
)

MANAGERS = ["uvicorn", "gunicorn", "gunicorn-asgi"]
# granian too, where it behaves as they do (docs/launchers.md: what it lacks).
SERVERS = [*MANAGERS, "granian"]


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server printed, each of which must be one JSON object."""
    return [json.loads(line) for line in server.output().splitlines() if line]


def _hold(url: str) -> None:
    """A request in progress until its worker dies."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url + "/sleep?seconds=30", timeout=40)


def stop_gracefully(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", SERVERS)
def test_metrics_add_up_across_workers_and_survive_a_killed_worker(
    name: str, tmp_path: Path
) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", LOG_FORMAT="json") as server:
        manager = server.proc.pid
        before = settled_workers(manager, 2)
        served = {httpx.get(server.url + "/info", headers=FRESH).json()["pid"] for _ in range(100)}
        assert served == before, "both workers served some of the 100"

        # Scrape on fresh connections until both workers have answered one: every scrape, from
        # either worker, counts all 100.
        # (The access line follows the response, so the log may lag one scrape behind.)
        def answered() -> set[int]:
            lines = json_lines(server)
            return {line["pid"] for line in lines if line.get("route") == "/metrics"}

        for _ in range(60):
            assert info_count(scrape(server.url)) == 100
            if answered() == before:
                break
        wait_for(lambda: answered() == before, 2, "scrapes answered by both workers")

        # A killed worker's requests stay counted; its gauges go with it.
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        after = settled_workers(manager, 2)
        assert victim not in after
        live = {(("pid", str(pid)),) for pid in after}

        def memory_series() -> set[tuple[tuple[str, str], ...]]:
            samples = scrape(server.url)
            return {labels for name, labels in samples if name == "process_resident_memory_bytes"}

        wait_for(lambda: memory_series() == live, 20, "the new worker's figures")
        for _ in range(10):
            samples = scrape(server.url)
            assert info_count(samples) == 100, "a killed worker's requests are still counted"
            assert memory_series() == live, "one series per live worker, the killed one gone"
            assert samples[("http_requests_in_progress", ())] == 1, "this scrape only"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SERVERS)
def test_a_killed_worker_leaves_no_request_in_progress(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2") as server:
        before = settled_workers(server.proc.pid, 2)
        threading.Thread(target=_hold, args=[server.url], daemon=True).start()
        # The held request, and this scrape.
        wait_for(lambda: scrape(server.url)[("http_requests_in_progress", ())] == 2, 10, "held")
        os.kill(_holding(server.url), signal.SIGKILL)
        (new,) = settled_workers(server.proc.pid, 2) - before
        # granian's manager holds no listening socket, and a worker of its answers 500 before
        # the app has started: wait for the new worker's own answer.
        wait_for(lambda: new in serving_pids(server.url), 10, "the new worker serving")
        assert scrape(server.url)[("http_requests_in_progress", ())] == 1, "only this scrape"


def _holding(url: str) -> int:
    """The worker serving the held request: the one that counts two in flight with this ask."""
    for _ in range(100):
        info = httpx.get(url + "/info", headers=FRESH).json()
        if info["in_flight"] == 2:
            return int(info["pid"])
    raise AssertionError("no worker holds the request")


def test_an_empty_file_of_a_dead_worker_does_not_break_metrics(tmp_path: Path) -> None:
    """A worker killed as it made its metrics file leaves it empty, which prometheus-client
    cannot read: the scrape drops it (counts are kept; an empty file holds none)."""
    shared = tmp_path / "metrics"
    with serve(
        launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(shared)
    ) as server:
        httpx.get(server.url + "/info")
        dead = max(running()) + 10_000  # no process has this pid
        (shared / f"counter_{dead}.db").touch()
        assert info_count(scrape(server.url)) == 1
        assert not (shared / f"counter_{dead}.db").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MANAGERS)
def test_metrics_start_from_zero_and_their_directory_goes(name: str, tmp_path: Path) -> None:
    given = tmp_path / "metrics"
    for run in range(2):
        with serve(
            launcher(name), tmp_path, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(given)
        ) as server:
            for _ in range(5):
                httpx.get(server.url + "/info", headers=FRESH)
            assert info_count(scrape(server.url)) == 5, f"run {run}: counted from zero"
            stop_gracefully(server)
    assert given.is_dir(), "a directory of the user's is emptied, never removed"

    private = tmp_path / "tmp"
    private.mkdir()
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", TMPDIR=str(private)) as server:
        assert [p.name for p in private.iterdir() if p.name.startswith("fastapi-metrics-")]
        stop_gracefully(server)
    assert not [p for p in private.iterdir() if p.name.startswith("fastapi-metrics-")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SERVERS)
def test_json_logs_carry_request_ids(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="2", LOG_FORMAT="json") as server:
        response = httpx.get(server.url + "/info", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"
        blocked = httpx.get(server.url + "/block?seconds=0", headers={"X-Request-ID": "block-9"})
        assert blocked.headers["x-request-id"] == "block-9"
        # Too long, a space, a quote, a tab (a control character HTTP allows in values; the
        # others get a 400 from the server's parser before the app sees them).
        hostile = ["x" * 200, "abc def", 'a"b', "a\tb"]
        replaced = []
        for value in hostile:
            got = httpx.get(server.url + "/healthz", headers={"X-Request-ID": value})
            assert got.status_code == 200
            replaced.append(got.headers["x-request-id"])
        assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in replaced)
        assert len(set(replaced)) == len(hostile), "a new id for each"
        stop_gracefully(server)

    lines = json_lines(server)  # every line, the launcher's and the managers' included
    assert {"timestamp", "level", "logger", "pid", "event"} <= set.intersection(
        *(set(line) for line in lines)
    )
    (access,) = [line for line in lines if line.get("request_id") == "abc-123"]
    assert access["logger"] == "app.access"
    assert access["pid"] == response.json()["pid"]
    assert (access["method"], access["route"], access["path"], access["status"]) == (
        "GET",
        "/info",
        "/info",
        200,
    )
    assert access["client"].startswith("127.0.0.1:")
    assert access["duration_ms"] > 0
    block_lines = [line for line in lines if line.get("request_id") == "block-9"]
    assert [line["logger"] for line in block_lines] == ["tests.kitapp", "app.access"]
    for value in hostile:
        assert json.dumps(value)[1:-1] not in server.output(), "a hostile id is never logged"
    assert not [line for line in lines if line["logger"] in ("uvicorn.access", "gunicorn.access")]


@pytest.mark.parametrize("name", SERVERS)
def test_console_logs_are_plain_lines_with_the_request_id(name: str, tmp_path: Path) -> None:
    with serve(launcher(name), tmp_path, WEB_CONCURRENCY="1", LOG_FORMAT="console") as server:
        httpx.get(server.url + "/info", headers={"X-Request-ID": "abc-123"})
        stop_gracefully(server)
    output = server.output()
    (access,) = [line for line in output.splitlines() if "request_id=abc-123" in line]
    for part in ("[app.access]", "route=/info", "status=200", "pid="):
        assert part in access
    assert "\x1b[" not in output, "no colour codes when the output is not a terminal"


def test_fastapi_cli_workers_log_json_too(tmp_path: Path) -> None:
    with serve(launcher("fastapi"), tmp_path, WEB_CONCURRENCY="1", LOG_FORMAT="json") as server:
        pid = httpx.get(server.url + "/info", headers={"X-Request-ID": "abc-123"}).json()["pid"]
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)  # -15: uvicorn re-raises the signal once it has stopped
    output = server.output()
    assert "has no option for LOG_FORMAT (it uses 'console'" in output
    access = [json.loads(line) for line in output.splitlines() if '"abc-123"' in line]
    assert [(line["logger"], line["pid"]) for line in access] == [("app.access", pid)]


# --- OpenTelemetry -----------------------------------------------------------------------------


class Collector(ThreadingHTTPServer):
    """A real OTLP/HTTP receiver on 127.0.0.1: keeps every export request it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", free_port()), _Receive)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def resources(self, path: str, message: type[Any]) -> list[Any]:
        found: list[Any] = []
        for kind, body in list(self.received):
            if kind == path:
                request = message()
                request.ParseFromString(body)
                found.extend(request.resource_spans if path == "/v1/traces" else [])
                found.extend(request.resource_metrics if path == "/v1/metrics" else [])
        return found


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _attributes(resource: Any) -> dict[str, Any]:
    return {
        attr.key: getattr(attr.value, attr.value.WhichOneof("value"))
        for attr in resource.resource.attributes
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SERVERS)
def test_every_worker_exports_otlp_with_its_own_instance_id(
    name: str, tmp_path: Path, collector: Collector
) -> None:
    # The service is named by the SDK's variable on one launcher; the others take the app's title.
    named: dict[str, Any] = {"OTEL_SERVICE_NAME": "notes-api"} if name == "gunicorn" else {}
    with serve(
        launcher(name),
        tmp_path,
        WEB_CONCURRENCY="2",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_BSP_SCHEDULE_DELAY="200",
        **named,
    ) as server:
        served: set[int] = set()
        for _ in range(100):
            served.add(httpx.get(server.url + "/info", headers=FRESH).json()["pid"])
            if len(served) == 2:
                break
        assert len(served) == 2
        stop_gracefully(server)  # each worker flushes what is still batched

    spans = collector.resources("/v1/traces", ExportTraceServiceRequest)
    by_instance: dict[str, set[int]] = {}
    routes = set()
    for resource in spans:
        attributes = _attributes(resource)
        assert attributes["service.name"] == ("notes-api" if named else "kit test app")
        by_instance.setdefault(attributes["service.instance.id"], set()).add(
            attributes["process.pid"]
        )
        for scope in resource.scope_spans:
            for span in scope.spans:
                routes |= {a.value.string_value for a in span.attributes if a.key == "http.route"}
    assert sorted(pid for pids in by_instance.values() for pid in pids) == sorted(served), (
        "one instance id per worker, each the pid that served"
    )
    assert "/info" in routes
    exported = collector.resources("/v1/metrics", ExportMetricsServiceRequest)
    instances = {_attributes(resource)["service.instance.id"] for resource in exported}
    assert instances == set(by_instance)
    names = {
        metric.name
        for resource in exported
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "http.server.request.duration" in names


def test_otlp_is_off_without_an_endpoint(tmp_path: Path, collector: Collector) -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported, though the SDK's own variables
    name a live collector: an exporter made anyway would find it through them."""
    with serve(
        launcher("uvicorn"),
        tmp_path,
        WEB_CONCURRENCY="1",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{collector.url}/v1/metrics",
        OTEL_METRIC_EXPORT_INTERVAL="100",
        OTEL_BSP_SCHEDULE_DELAY="50",
    ) as server:
        for _ in range(5):
            httpx.get(server.url + "/info")
        stop_gracefully(server)  # a worker that exported would have flushed: it has exited
    assert collector.received == []


def test_metrics_add_up_with_gunicorn_preload(tmp_path: Path) -> None:
    """With PRELOAD the master imports the app (and prometheus-client) before forking: the
    shared directory must already be set then, or each worker would count on its own."""
    with serve(launcher("gunicorn"), tmp_path, WEB_CONCURRENCY="2", PRELOAD="true") as server:
        before = settled_workers(server.proc.pid, 2)
        served: list[int] = []

        def both_served() -> bool:  # fresh connections, until each worker has answered some
            served.append(httpx.get(server.url + "/info", headers=FRESH).json()["pid"])
            return set(served) == before

        wait_for(both_served, 20, "requests on both workers")
        for _ in range(10):
            assert info_count(scrape(server.url)) == len(served)
