"""`make bench` (`python -m bench`): every configuration in turn, over interleaved rounds.

BENCH_SECONDS sets the length of each load measurement (default 5), BENCH_ROUNDS the number of
rounds (default 3): every round measures everything once, in a rotated order, so the machine's
drift (thermal, other processes) spreads over all configurations, and the report takes medians.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench import report, servers, wrk
from bench.servers import CPU, INFO, SLEEP, Config
from devtls.certs import CertPaths, ensure

Key = tuple[object, ...]
Samples = dict[Key, list[float]]


def main() -> int:
    try:
        seconds = _whole("BENCH_SECONDS", 5)
        rounds = _whole("BENCH_ROUNDS", 3)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not wrk.available():
        print(f"error: {wrk.INSTALL}", file=sys.stderr)
        return 2
    cpus = len(os.sched_getaffinity(0))
    samples: Samples = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        tls = _certificates(workdir)
        steps = plan(servers.configs(), cpus, seconds, workdir, tls, samples)
        total = len(steps) * rounds
        began = time.monotonic()
        for round_ in range(rounds):
            shift = round_ * len(steps) // rounds  # a different starting point each round
            for index, (label, step) in enumerate(steps[shift:] + steps[:shift]):
                done = round_ * len(steps) + index
                _progress(done, total, began, f"round {round_ + 1}/{rounds} · {label}")
                step()
        _progress(total, total, began, "done")
    medians = {key: statistics.median(values) for key, values in samples.items()}
    written = report.write(medians, seconds=seconds, rounds=rounds, cpus=cpus)
    print(written[0].read_text())
    print("written: " + ", ".join(str(path) for path in written), file=sys.stderr)
    return 0


def plan(
    configs: list[Config],
    cpus: int,
    seconds: int,
    workdir: Path,
    tls: tuple[Path, Path],
    samples: Samples,
) -> list[tuple[str, Callable[[], None]]]:
    steps: list[tuple[str, Callable[[], None]]] = []

    def loaded(config: Config) -> None:
        with servers.running(config, 1, workdir) as server:
            samples[("start", config.name, 1)].append(server.started_in)
            _record(samples, ("load", config.name, 1, INFO, "http"), server.url + INFO, seconds)
            samples[("pss", config.name, 1)].append(servers.pss(server.proc.pid))

    def four(config: Config) -> None:
        with servers.running(config, 4, workdir) as server:
            samples[("start", config.name, 4)].append(server.started_in)
            samples[("pss", config.name, 4)].append(servers.pss(server.proc.pid))

    def https(config: Config) -> None:
        # Both servers up at once and warmed, then measured in turns, A B B A (B A A B the next
        # time), and the ratio of each round's sums kept: a drift within the round falls on
        # both alike, and neither is always first.
        ratios = samples[("tls", config.name, "ratio")]
        with (
            servers.running(config, 1, workdir) as plain,
            servers.running(config, 1, workdir, tls) as secure,
        ):
            urls = {"http": plain.url + INFO, "https": secure.url + INFO}
            for url in urls.values():
                wrk.run(url, 1)  # the first requests of a process are slower: not measured
            turns = ["http", "https", "https", "http"]
            rps: dict[str, float] = defaultdict(float)
            for scheme in turns if len(ratios) % 2 == 0 else turns[::-1]:
                rps[scheme] += _record(samples, ("tls", config.name, scheme), urls[scheme], seconds)
        ratios.append(rps["https"] / rps["http"])

    def side_by_side(ours: Config, bare: Config) -> None:
        # The throughput goal's ratio: both measured back to back, in turns first, and the
        # ratio of each pair kept. Apart, each run's drift (±10 % on a small shared machine)
        # lands whole in the ratio of the medians.
        pairs = samples[("goal", "ratio")]
        rps = {}
        for config in (ours, bare) if len(pairs) % 2 == 0 else (bare, ours):
            with servers.running(config, 1, workdir) as server:
                rps[config.name] = wrk.run(server.url + INFO, seconds).rps
        pairs.append(rps[ours.name] / rps[bare.name])

    def study(config: Config, workers: int) -> None:
        with servers.running(config, workers, workdir) as server:
            for path in (CPU, SLEEP):
                key = ("load", config.name, workers, path, "http")
                _record(samples, key, server.url + path, seconds, connections=100)

    for config in configs:
        steps.append((f"{config.name}: 1 worker, load", partial(loaded, config)))
        steps.append((f"{config.name}: 4 workers, start-up", partial(four, config)))
    by_name = {config.name: config for config in configs}
    goal = (by_name[report.OURS], by_name[report.BARE])
    steps.append((f"{goal[0].name} and {goal[1].name}, side by side", partial(side_by_side, *goal)))
    for name in report.TLS:
        steps.append((f"{name}: HTTPS and HTTP", partial(https, by_name[name])))
    for workers in worker_counts(cpus):
        label = f"ours: uvicorn: {workers} workers, /demo/cpu and /demo/sleep"
        steps.append((label, partial(study, configs[0], workers)))
    return steps


def worker_counts(cpus: int) -> list[int]:
    return sorted({1, 2, cpus, 2 * cpus + 1})


def _record(samples: Samples, key: Key, url: str, seconds: int, connections: int = 50) -> float:
    """Measure, keep the figures under `key`, and return the requests/s."""
    load = wrk.run(url, seconds, connections)
    samples[(*key, "rps")].append(load.rps)
    samples[(*key, "p50")].append(load.p50_ms)
    samples[(*key, "p99")].append(load.p99_ms)
    samples[(*key, "errors")].append(load.errors)
    return load.rps


def _whole(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} is not a whole number of at least 1.")
    return int(value)


def _certificates(workdir: Path) -> tuple[Path, Path]:
    paths = CertPaths(workdir / "certs")
    ensure(paths)
    return paths.server, paths.server_key


def _progress(done: int, total: int, began: float, label: str) -> None:
    elapsed = time.monotonic() - began
    eta = f", ~{elapsed / done * (total - done):.0f} s left" if done else ""
    line = f"[{done}/{total}] {elapsed:.0f} s{eta} · {label}"
    if sys.stderr.isatty():
        print(f"\r\x1b[2K{line}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
