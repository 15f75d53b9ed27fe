"""The bench's parts on real processes: wrk against a real server, start-up timing, PSS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import report, servers, wrk
from bench.__main__ import worker_counts
from tests.servers import ROOT, clean_env, launcher, serve, tree

needs_wrk = pytest.mark.skipif(
    not wrk.available(), reason="wrk is not installed (apt-get install wrk)"
)


@needs_wrk
def test_wrk_measures_a_real_server(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1") as server:
        load = wrk.run(server.url + "/info", seconds=1, connections=4)
    assert load.rps > 0
    assert 0 < load.p50_ms <= load.p99_ms
    assert load.errors == 0


@needs_wrk
def test_the_rate_leaves_out_the_start_of_a_load(tmp_path: Path) -> None:
    # The server stopped while wrk connects and sends: wrk's own figure counts that stall, as it
    # counts a run's TLS handshakes; the rate we take starts once the warm-up is over.
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1") as server:
        pids = tree(server.proc.pid)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            load = subprocess.Popen(
                wrk._command(server.url + "/info", 1, 4), stdout=subprocess.PIPE, text=True
            )
            time.sleep(0.9 * wrk.WARMUP)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        out = load.communicate(timeout=30)[0]
    own = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    # Served in 1.1 s of the run's 2: wrk's own figure is about 0.55 of the steady one.
    assert wrk._parse(out).rps > 1.4 * own > 0


@needs_wrk
def test_wrk_counts_failed_answers(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1") as server:
        load = wrk.run(server.url + "/nowhere", seconds=1, connections=4)
    assert load.errors > 0, "404s are not successes"


def test_start_waits_for_every_worker_and_stop_leaves_nothing(tmp_path: Path) -> None:
    raw = next(c for c in servers.configs() if c.name == "raw ASGI, uvicorn")
    running = servers.start(raw, 2, tmp_path)
    try:
        assert running.started_in > 0
        # The manager and its two workers: three Python processes, over 10 MiB each.
        assert servers.pss(running.proc.pid) > 30 * 2**20
    finally:
        servers.stop(running.proc)
    assert running.proc.returncode is not None


@needs_wrk
def test_two_servers_measured_together_share_one_cpu(tmp_path: Path) -> None:
    """The goals' ratios: both servers, workers included, on one CPU, loaded at once."""
    raw = next(c for c in servers.configs() if c.name == "raw ASGI, uvicorn")
    usable = sorted(os.sched_getaffinity(0))
    with (
        servers.running(raw, 2, tmp_path, cpus={usable[0]}) as first,
        servers.running(raw, 1, tmp_path, cpus={usable[0]}) as second,
    ):
        pids = tree(first.proc.pid) + tree(second.proc.pid)
        assert len(pids) >= 3 + 1, "a manager and its two workers, and a single process"
        assert {frozenset(os.sched_getaffinity(pid)) for pid in pids} == {frozenset(usable[:1])}
        loads = wrk.together([first.url + "/info", second.url + "/info"], 1, {usable[-1]})
    assert [load.errors for load in loads] == [0, 0]
    assert all(load.rps > 0 for load in loads)


@needs_wrk
def test_the_machine_line_names_the_openssl_the_servers_load() -> None:
    # HTTPS figures depend on it, and the servers are started with the bench's own interpreter.
    loaded = subprocess.run(
        [servers.PY, "-c", "import ssl; print(ssl.OPENSSL_VERSION)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert loaded[0] == "OpenSSL"
    assert f", OpenSSL {loaded[1]}, " in report.machine(2)


def test_worker_counts_of_the_study() -> None:
    assert worker_counts(2) == [1, 2, 5]
    assert worker_counts(1) == [1, 2, 3]
    assert worker_counts(8) == [1, 2, 8, 17]


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("BENCH_SECONDS=soon", "BENCH_SECONDS='soon' is not a whole number of at least 1."),
        ("BENCH_REFERENCE=maybe", "BENCH_REFERENCE='maybe' is neither true nor false."),
    ],
)
def test_bad_bench_settings_are_named(setting: str, error: str) -> None:
    name, value = setting.split("=")
    result = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=ROOT,
        env=clean_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stderr) == (2, f"error: {error}\n")


def test_a_run_is_dated_and_ignored_unless_it_is_the_reference(tmp_path: Path) -> None:
    committed = subprocess.run(
        ["git", "ls-files", "bench/results"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(committed) == [f"bench/results/reference.{ext}" for ext in ("json", "md", "png")]
    ignored = subprocess.run(
        ["git", "check-ignore", "bench/results/2026-12-07-vm.md", "bench/results/reference.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == ["bench/results/2026-12-07-vm.md"]
