"""The bench's results as a Markdown table and a PNG chart, labelled with the machine and date."""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import ssl
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from bench import wrk
from bench.servers import CPU, INFO, SLEEP, STARTS

RESULTS = Path(__file__).resolve().parent / "results"
OURS, BARE, RAW = "ours: uvicorn", "bare FastAPI, fastapi run", "raw ASGI, uvicorn"
TLS = ("ours: uvicorn", "ours: gunicorn", "ours: granian")  # measured HTTPS against HTTP
PRELOADED = "ours: gunicorn, PRELOAD"
# Each launcher against the stock command it wraps, serving the same app.
STOCK = {
    "ours: uvicorn": "uvicorn",
    "ours: gunicorn": "gunicorn + UvicornWorker",
    "ours: fastapi": "fastapi run",
}

Medians = dict[tuple[object, ...], float]


REFERENCE = RESULTS / "reference.json"  # the run the docs quote, the only one committed


def write(
    medians: Medians, *, seconds: int, rounds: int, cpus: int, reference: bool = False
) -> list[Path]:
    """The figures as JSON, then the Markdown and chart drawn from them: [md, png, json]. A run
    is named by its date and machine (git ignores it), or replaces the reference run."""
    RESULTS.mkdir(exist_ok=True)
    figures = REFERENCE if reference else RESULTS / f"{dt.date.today()}-{socket.gethostname()}.json"
    data = {"seconds": seconds, "rounds": rounds, "cpus": cpus, "medians": list(medians.items())}
    figures.write_text(json.dumps(data, indent=0) + "\n")
    return [*redraw(figures), figures]


def redraw(figures: Path) -> list[Path]:
    """Write the Markdown and chart from a results JSON file (`python -m bench.report FILE`),
    measuring nothing."""
    data = json.loads(figures.read_text())
    medians = {tuple(key): value for key, value in data["medians"]}
    about = machine(data["cpus"])
    markdown, chart = figures.with_suffix(".md"), figures.with_suffix(".png")
    markdown.write_text(
        render(
            medians,
            seconds=data["seconds"],
            rounds=data["rounds"],
            cpus=data["cpus"],
            about=about,
            chart=chart,
        )
    )
    draw(medians, chart, data["cpus"], about)
    return [markdown, chart]


def machine(cpus: int) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True
    ).stdout.split()
    # uvicorn's TLS is the ssl module of the interpreter the servers share with this process, so
    # this is the OpenSSL behind their HTTPS figures (granian brings its own TLS).
    openssl = " ".join(ssl.OPENSSL_VERSION.split()[:2])
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("fastapi", "uvicorn", "gunicorn", "uvicorn-worker", "granian")
    )
    return (
        f"{socket.gethostname()}: {model}, {cpus} CPUs usable, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {openssl}, {versions}, "
        f"wrk {wrk_version[1] if len(wrk_version) > 1 else '?'}"
    )


def render(
    medians: Medians, *, seconds: int, rounds: int, cpus: int, about: str, chart: Path
) -> str:
    names = _names(medians, "start")
    lines = [
        f"# make bench: {dt.date.today()}",
        "",
        f"Machine: {about}.",
        f"Medians of {rounds} interleaved rounds, {seconds:g} s of `wrk -t1 -c50` per load figure, "
        f"keep-alive, counted from {wrk.WARMUP} s after the start, once the connections are up "
        "(a TLS handshake is paid once a connection, not once a measurement). Servers log to a "
        "file, as to a container runtime's pipe (so our launchers log JSON: `LOG_FORMAT=auto`). "
        f"Start-up: from launch to every worker answering, {STARTS} starts a round. Memory: PSS "
        "summed over the process tree, at 1 worker after its load, at 4 just after start-up.",
        "",
        "## Launchers: GET /info, one worker; start-up and memory at 1 and 4 workers",
        "",
        "| Configuration | req/s | p50 ms | p99 ms | errors | start 1 w (s) | start 4 w (s) "
        "| PSS 1 w (MiB) | PSS 4 w (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        load = ("load", name, 1, INFO, "http")
        lines.append(
            f"| {name} | {_get(medians, *load, 'rps'):,.0f} | {_get(medians, *load, 'p50'):.2f} "
            f"| {_get(medians, *load, 'p99'):.2f} | {_get(medians, *load, 'errors'):.0f} "
            f"| {_get(medians, 'start', name, 1):.2f} | {_get(medians, 'start', name, 4):.2f} "
            f"| {_get(medians, 'pss', name, 1) / 2**20:.0f} "
            f"| {_get(medians, 'pss', name, 4) / 2**20:.0f} |"
        )
    lines += ["", "## HTTPS against HTTP: GET /info, one worker, keep-alive", ""]
    lines += [
        "The HTTP and the HTTPS server at once, on one CPU (about half of it each), each loaded "
        "by its own wrk on another: both take the machine's swings alike. The ratio is the "
        "median of the rounds' ratios.",
        "",
        "| Configuration | HTTP req/s | HTTPS req/s | HTTPS / HTTP |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in sorted({str(key[1]) for key in medians if key[0] == "tls"}):
        http = _get(medians, "tls", name, "http", "rps")
        https = _get(medians, "tls", name, "https", "rps")
        ratio = _get(medians, "tls", name, "ratio")
        lines.append(f"| {name} | {http:,.0f} | {https:,.0f} | {ratio:.3f} |")
    lines += [
        "",
        f"## How many workers: {OURS}, 100 connections ({cpus} CPUs)",
        "",
        f"| Workers | {CPU} req/s | {SLEEP} req/s |",
        "| ---: | ---: | ---: |",
    ]
    for workers in _study_counts(medians):
        cpu = _get(medians, "load", OURS, workers, CPU, "http", "rps")
        sleep = _get(medians, "load", OURS, workers, SLEEP, "http", "rps")
        lines.append(f"| {workers} | {cpu:,.0f} | {sleep:,.0f} |")
    lines += ["", "## Goals", "", "| Goal | Measured | Met |", "| --- | ---: | :---: |"]
    lines += [
        f"| {goal} | {value:.3f} | {'yes' if met else 'no'} |"
        for goal, value, met in goals(medians)
    ]
    lines += ["", f"![make bench chart]({chart.name})", ""]
    return "\n".join(lines)


def goals(medians: Medians) -> list[tuple[str, float, bool]]:
    """Each goal, its ratio as the report prints it (3 decimals), and whether that meets it."""
    at_least: list[tuple[str, float, float]] = [
        (
            "ours: uvicorn, 1 worker, an app with the kit's features, req/s ÷ bare FastAPI "
            "under `fastapi run`, both at once on one CPU (≥ 1.2)",
            _get(medians, "goal", "ratio"),
            1.2,
        ),
        *[
            (f"{name}: HTTPS ÷ HTTP req/s (≥ 0.9)", _get(medians, "tls", name, "ratio"), 0.9)
            for name in TLS
        ],
    ]
    at_most = [
        *[
            (f"{ours}, {label} ÷ `{stock}`'s (≤ 1.1)", _ratio(medians, key, ours, stock, n), 1.1)
            for ours, stock in STOCK.items()
            for label, key, n in (
                ("start-up, 1 worker", "start", 1),
                ("PSS, 1 worker", "pss", 1),
                ("start-up, 4 workers", "start", 4),
            )
        ],
        *[
            (
                f"gunicorn PRELOAD, 4 workers: {label} ÷ the best other configuration's (≤ 1)",
                _get(medians, key, PRELOADED, 4) / min(_others(medians, key, 4)),
                1.0,
            )
            for label, key in (("start-up", "start"), ("PSS", "pss"))
        ],
        (
            "gunicorn PRELOAD, 4 workers: PSS ÷ uvicorn spawn (≤ 0.6)",
            _get(medians, "pss", PRELOADED, 4) / _get(medians, "pss", OURS, 4),
            0.6,
        ),
        (
            "gunicorn PRELOAD, 4 workers: start-up ÷ uvicorn spawn (≤ 0.5)",
            _get(medians, "start", PRELOADED, 4) / _get(medians, "start", OURS, 4),
            0.5,
        ),
    ]
    return [(goal, round(v, 3), round(v, 3) >= bound) for goal, v, bound in at_least] + [
        (goal, round(v, 3), round(v, 3) <= bound) for goal, v, bound in at_most
    ]


def _others(medians: Medians, key: str, workers: int) -> list[float]:
    """Every configuration's figure but PRELOAD's and the reference points' (other apps)."""
    return [
        _get(medians, key, name, workers)
        for name in _names(medians, key)
        if name != PRELOADED and name not in (BARE, RAW)
    ]


def _ratio(medians: Medians, key: str, one: str, other: str, workers: int) -> float:
    return _get(medians, key, one, workers) / _get(medians, key, other, workers)


def draw(medians: Medians, path: Path, cpus: int, about: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _names(medians, "start")
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    fig.suptitle(f"make bench, {dt.date.today()}: {about}", fontsize=8, wrap=True)

    rps = [_get(medians, "load", n, 1, INFO, "http", "rps") for n in names]
    bars = axes[0][0].barh(names, rps, color=[_colour(n) for n in names])
    axes[0][0].bar_label(bars, labels=[f"{v:,.0f}" for v in rps], padding=3, fontsize=8)
    axes[0][0].set_xscale("log")  # the raw ASGI ceiling is an order of magnitude above the rest
    axes[0][0].set_xlim(left=1000)
    axes[0][0].set_title("GET /info, 1 worker: requests/s (log scale)")
    axes[0][0].invert_yaxis()

    width = 0.4
    ys = range(len(names))
    for offset, workers in ((-width / 2, 1), (width / 2, 4)):
        values = [_get(medians, "pss", n, workers) / 2**20 for n in names]
        axes[0][1].barh([y + offset for y in ys], values, height=width, label=_workers(workers))
    axes[0][1].set_yticks(list(ys), names)
    axes[0][1].invert_yaxis()
    axes[0][1].set_title("Memory: PSS of the process tree (MiB)")
    axes[0][1].legend()

    for offset, workers in ((-width / 2, 1), (width / 2, 4)):
        values = [_get(medians, "start", n, workers) for n in names]
        axes[1][0].barh([y + offset for y in ys], values, height=width, label=_workers(workers))
    axes[1][0].set_yticks(list(ys), names)
    axes[1][0].invert_yaxis()
    axes[1][0].set_title("Start-up: launch to every worker serving (s)")
    axes[1][0].legend()

    counts = _study_counts(medians)
    for path_, label in (
        (CPU, "CPU-bound (/cpu)"),
        (SLEEP, "awaiting I/O (/sleep)"),
    ):
        axes[1][1].plot(
            counts,
            [_get(medians, "load", OURS, w, path_, "http", "rps") for w in counts],
            marker="o",
            label=label,
        )
    axes[1][1].axvline(cpus, color="grey", linestyle=":", label=f"{cpus} CPUs")
    axes[1][1].set_ylim(bottom=0)
    axes[1][1].set_xticks(counts)
    axes[1][1].set_xlabel("workers")
    axes[1][1].set_title(f"{OURS}: requests/s by worker count")
    axes[1][1].legend()

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _study_counts(medians: Medians) -> list[int]:
    keys = [key for key in medians if key[0] == "load" and key[3] == CPU]
    return sorted({int(str(key[2])) for key in keys})


def _names(medians: Medians, kind: str) -> list[str]:
    return sorted({str(key[1]) for key in medians if key[0] == kind}, key=_order)


def _get(medians: Medians, *key: object) -> float:
    return medians.get(tuple(key), float("nan"))


def _order(name: str) -> tuple[int, str]:
    return (0 if name.startswith("ours") else 2 if name in (BARE, RAW) else 1, name)


def _colour(name: str) -> str:
    return {0: "tab:green", 1: "tab:blue", 2: "tab:grey"}[_order(name)[0]]


if __name__ == "__main__":
    redraw(Path(sys.argv[1]))
