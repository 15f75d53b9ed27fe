"""`make bench` (`python -m bench`): every configuration in turn, over interleaved rounds.

BENCH_SECONDS sets the length of each load measurement (default 5), BENCH_ROUNDS the number of
rounds (default 3). Every round measures everything once, in a rotated order, so the machine's
drift (thermal, other processes) spreads over all configurations, and the report takes medians.
The goals' ratios come from two servers measured at once, sharing one CPU (`together`).
A run is written to `bench/results/`, named by its date and machine, which git ignores;
BENCH_REFERENCE=true makes it the reference run the docs quote (`bench/results/reference.*`).
"""

from __future__ import annotations

import compileall
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
from bench.servers import CPU, INFO, SLEEP, STARTS, Config
from devtls.certs import CertPaths, ensure
from tests.servers import ROOT

Key = tuple[object, ...]
Samples = dict[Key, list[float]]


def main() -> int:
    try:
        seconds = _whole("BENCH_SECONDS", 5)
        rounds = _whole("BENCH_ROUNDS", 3)
        reference = _flag("BENCH_REFERENCE")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not wrk.available():
        print(f"error: {wrk.INSTALL}", file=sys.stderr)
        return 2
    cpus = len(os.sched_getaffinity(0))
    # Bytecode for every module served, as the image has it: where PYTHONDONTWRITEBYTECODE is set,
    # each start would otherwise compile the project's modules again (site-packages' are
    # compiled at install).
    for package in ("app", "launchers", "tests", "bench"):
        if (ROOT / package).is_dir():
            compileall.compile_dir(ROOT / package, quiet=1)
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
    written = report.write(medians, seconds=seconds, rounds=rounds, cpus=cpus, reference=reference)
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
        started(config, 1, STARTS - 1)

    def four(config: Config) -> None:
        with servers.running(config, 4, workdir) as server:
            samples[("start", config.name, 4)].append(server.started_in)
            samples[("pss", config.name, 4)].append(servers.pss(server.proc.pid))
        started(config, 4, STARTS - 1)

    def started(config: Config, workers: int, times: int) -> None:
        for _ in range(times):
            with servers.running(config, workers, workdir) as server:
                samples[("start", config.name, workers)].append(server.started_in)

    # The goals' ratios are measured with both configurations at once, on one CPU, each loaded
    # by its own wrk on another. One after the other, a small VM's swings (±20 % from one second
    # to the next) land whole in each ratio; at once, both take the same swings and the CPU's
    # time in equal shares, so what each serves is in the ratio of their costs per request.
    serving, loading = _cpus()

    def together(first: Config, second: Config, tls_second: bool = False) -> list[wrk.Load]:
        with (
            servers.running(first, 1, workdir, cpus=serving) as one,
            servers.running(second, 1, workdir, tls if tls_second else None, serving) as other,
        ):
            # A process's first requests are slower: they fall in wrk's warm-up, not counted.
            return wrk.together([one.url + INFO, other.url + INFO], seconds, loading)

    def https(config: Config) -> None:
        http, secure = together(config, config, tls_second=True)
        _keep(samples, ("tls", config.name, "http"), http)
        _keep(samples, ("tls", config.name, "https"), secure)
        samples[("tls", config.name, "ratio")].append(secure.rps / http.rps)

    def side_by_side(ours: Config, bare: Config) -> None:
        mine, theirs = together(ours, bare)
        samples[("goal", "ratio")].append(mine.rps / theirs.rps)

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
        label = f"ours: uvicorn: {workers} workers, /cpu and /sleep"
        steps.append((label, partial(study, configs[0], workers)))
    return steps


def worker_counts(cpus: int) -> list[int]:
    return sorted({1, 2, cpus, 2 * cpus + 1})


def _cpus() -> tuple[set[int], set[int]]:
    """A CPU for two servers measured together, another for their load (the same one if there
    is only one)."""
    usable = sorted(os.sched_getaffinity(0))
    return {usable[0]}, {usable[-1]}


def _record(
    samples: Samples, key: Key, url: str, seconds: int, connections: int = wrk.CONNECTIONS
) -> None:
    _keep(samples, key, wrk.run(url, seconds, connections))


def _keep(samples: Samples, key: Key, load: wrk.Load) -> None:
    samples[(*key, "rps")].append(load.rps)
    samples[(*key, "p50")].append(load.p50_ms)
    samples[(*key, "p99")].append(load.p99_ms)
    samples[(*key, "errors")].append(load.errors)


def _whole(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} is not a whole number of at least 1.")
    return int(value)


def _flag(name: str) -> bool:
    value = os.environ.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise ValueError(f"{name}={value!r} is neither true nor false.")
    return value in ("true", "1")


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
