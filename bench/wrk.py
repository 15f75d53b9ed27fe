"""One `wrk` measurement: requests per second with every connection up, and latency percentiles,
parsed from its report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
INSTALL = (
    "make bench needs wrk, an HTTP load generator: `sudo apt-get install wrk` (Debian, Ubuntu), "
    "`sudo dnf install wrk` (Fedora) or `brew install wrk` (macOS)."
)


STEADY = Path(__file__).with_name("steady.lua")
WARMUP = 1  # seconds: 100 connections' TLS handshakes take a tenth of that on the VM of 2026-12-01


@dataclass(frozen=True)
class Load:
    rps: float  # from `WARMUP` on: what keep-alive connections serve, their set-up left out
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and non-2xx/3xx answers


def available() -> bool:
    return shutil.which("wrk") is not None


CONNECTIONS = 50  # keep-alive connections a load keeps open, unless told otherwise


def run(url: str, seconds: int, connections: int = CONNECTIONS) -> Load:
    out = subprocess.run(
        _command(url, seconds, connections),
        capture_output=True,
        text=True,
        check=True,
        timeout=WARMUP + seconds + 30,
    ).stdout
    return _parse(out)


def together(urls: list[str], seconds: int, cpus: set[int]) -> list[Load]:
    """One wrk per URL, all at once, on `cpus` (each wrk's thread inherits them)."""
    loads = [
        subprocess.Popen(
            _command(url, seconds, CONNECTIONS),
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        for url in urls
    ]
    outs = [load.communicate(timeout=WARMUP + seconds + 30)[0] for load in loads]
    for load in loads:
        if load.returncode:
            raise subprocess.CalledProcessError(load.returncode, load.args)
    return [_parse(out) for out in outs]


def _command(url: str, seconds: int, connections: int) -> list[str]:
    # One wrk thread: on a small machine the load generator competes with the server for CPU,
    # and one thread keeps a single-worker server's core to itself.
    duration = f"-d{WARMUP + seconds}s"
    script = ["-s", str(STEADY), url, "--", str(WARMUP)]
    return ["wrk", "-t1", f"-c{connections}", duration, "--latency", *script]


def _parse(out: str) -> Load:
    rps = float(_find(r"Steady requests/sec: ([\d.]+)", out))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(_find(r"Non-2xx or 3xx responses: (\d+)", out, "0"))
    return Load(rps, _latency("50%", out), _latency("99%", out), errors)


def _latency(percentile: str, out: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise ValueError(f"wrk's report has no {pattern!r}:\n{text}")
        return default
    return match.group(1)
