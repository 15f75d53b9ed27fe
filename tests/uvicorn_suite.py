"""A conftest for uvicorn's own test suite: it runs with our classes in place of uvicorn's.

`test_uvicorn_contract` copies this file into an unpacked copy of uvicorn's sdist as its root
`conftest.py`; it is inert in our own suite. Loaded before uvicorn's tests are imported, it puts
our `HttpToolsProtocol` where uvicorn's tests and `Config(http="httptools"|"auto")` find theirs,
and our `Supervisor` where `tests/supervisors/test_multiprocess.py` finds `Multiprocess`. The
outcome of every test is written as JSON to the file named by `$UVICORN_CONTRACT_RESULTS`.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
import uvicorn
import uvicorn.protocols.http.auto as auto_impl
import uvicorn.protocols.http.httptools_impl as httptools_impl

from launchers.heartbeat import BeatFiles
from launchers.limits import Limits
from launchers.protocol import HttpToolsProtocol
from launchers.supervisor import Supervisor

HTTPTOOLS = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"  # its fixture's param
SUPERVISOR_TESTS = "tests.supervisors.test_multiprocess"
STOCK = httptools_impl.HttpToolsProtocol

# Module attributes, not the installed files: `import_from_string(HTTPTOOLS)`, which uvicorn's
# `http_protocol_cls` fixture and its `Config` both use, then returns ours.
httptools_impl.HttpToolsProtocol = HttpToolsProtocol  # type: ignore[misc]
if auto_impl.AutoHTTPProtocol is STOCK:
    auto_impl.AutoHTTPProtocol = HttpToolsProtocol


class UvicornShapedSupervisor(Supervisor):
    """Our supervisor with `Multiprocess`'s signature: a stock `Config`, and heartbeat files in a
    directory of its own, as our launcher gives it."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        if not isinstance(getattr(config, "limits", None), Limits):
            config.limits = Limits()  # type: ignore[attr-defined]
        beats = BeatFiles(Path(tempfile.mkdtemp(prefix="beats-")))
        super().__init__(config, sockets, beats)  # type: ignore[arg-type]


_results: dict[str, dict[str, str]] = {}
_supervised: list[str] = []
_RANK = {"passed": 0, "skipped": 1, "failed": 2}  # a test's outcome is its worst phase's


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the runs of uvicorn's other protocols (h11, zttp): they do not run our code."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        protocol = callspec.params.get("http_protocol_cls") if callspec else None
        (keep if protocol in (None, HTTPTOOLS) else drop).append(item)
        module = getattr(item, "module", None)
        # Only the supervisor's own tests: others patch `Multiprocess` for `uvicorn.run`'s sake.
        if module is not None and module.__name__ == SUPERVISOR_TESTS:
            module.Multiprocess = UvicornShapedSupervisor
            _supervised.append(item.nodeid)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


def _record(nodeid: str, outcome: str, longrepr: object) -> None:
    entry = _results.get(nodeid)
    if entry is None or _RANK[outcome] > _RANK[entry["outcome"]]:
        crash = getattr(longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(longrepr or "")
        _results[nodeid] = {"outcome": outcome, "message": message.partition("\n")[0]}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report.nodeid, report.outcome, report.longrepr)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:  # a module that no longer imports: each of its tests is lost
        _record(report.nodeid, "failed", report.longrepr)


def pytest_sessionfinish(session: pytest.Session) -> None:
    swapped = {
        "httptools": _qualified(httptools_impl.HttpToolsProtocol),
        "auto": _qualified(auto_impl.AutoHTTPProtocol),
        "supervised": _supervised,
    }
    path = Path(os.environ["UVICORN_CONTRACT_RESULTS"])
    path.write_text(json.dumps({"swapped": swapped, "results": _results}, indent=1))


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
