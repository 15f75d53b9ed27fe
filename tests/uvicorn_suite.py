"""A conftest for uvicorn's own test suite: it runs with our classes in place of uvicorn's.

`test_uvicorn_contract` copies this file into an unpacked copy of uvicorn's sdist as its root
`conftest.py`; it is inert in our own suite. Loaded before uvicorn's tests are imported, it puts
our `HttpToolsProtocol` where uvicorn's tests and `Config(http="httptools"|"auto")` find theirs,
our zttp protocols where they and `Config(http="zttp", http2=True)` find uvicorn's, and our
`Supervisor` where `tests/supervisors/test_multiprocess.py` finds `Multiprocess`. The outcome of
every test is written as JSON to the file named by `$UVICORN_CONTRACT_RESULTS`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
import uvicorn
import uvicorn.protocols.http.auto as auto_impl
import uvicorn.protocols.http.auto_zttp_impl as auto_zttp_impl
import uvicorn.protocols.http.httptools_impl as httptools_impl
import uvicorn.protocols.http.zttp_h2_impl as zttp_h2_impl
import uvicorn.protocols.http.zttp_impl as zttp_impl

from launchers.drain import DRAIN
from launchers.heartbeat import BeatFiles
from launchers.uvicorn import zttp as zttp_protocol
from launchers.uvicorn.limits import Limits
from launchers.uvicorn.outbox import OUTBOX
from launchers.uvicorn.protocol import HttpToolsProtocol
from launchers.uvicorn.supervisor import Supervisor

HTTPTOOLS = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"  # its fixture's params
ZTTP = "uvicorn.protocols.http.zttp_impl:ZttpProtocol"
SUPERVISOR_TESTS = "tests.supervisors.test_multiprocess"
H2_TESTS = "tests.protocols.test_http2"
MOCK_STEP_TIMEOUT = 5  # a step of its mock event loop is instant, unless it waits for a 503
STOCK = httptools_impl.HttpToolsProtocol

# Module attributes, not the installed files: `import_from_string(HTTPTOOLS)`, which uvicorn's
# `http_protocol_cls` fixture and its `Config` both use, then returns ours.
httptools_impl.HttpToolsProtocol = HttpToolsProtocol  # type: ignore[misc]
if auto_impl.AutoHTTPProtocol is STOCK:
    auto_impl.AutoHTTPProtocol = HttpToolsProtocol
# `Config(http="zttp")` imports `ZTTP`, `http2=True` the `AutoZttpProtocol` below; uvicorn's
# `test_http2.py` imports all three from these modules.
zttp_impl.ZttpProtocol = zttp_protocol.ZttpProtocol  # type: ignore[misc]
zttp_h2_impl.ZttpH2Protocol = zttp_protocol.ZttpH2Protocol  # type: ignore[misc]
auto_zttp_impl.AutoZttpProtocol = zttp_protocol.AutoZttpProtocol  # type: ignore[misc]


class UvicornShapedSupervisor(Supervisor):
    """Our supervisor with `Multiprocess`'s signature: a stock `Config`, and heartbeat files in a
    directory of its own, as our launcher gives it."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        if not isinstance(getattr(config, "limits", None), Limits):
            config.limits = Limits()  # type: ignore[attr-defined]
        beats = BeatFiles(Path(tempfile.mkdtemp(prefix="beats-")))
        super().__init__(config, sockets, beats)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _a_server_per_process() -> None:
    """Our protocols remember that their worker's one server began to drain; here every test's
    server shares this one process, so each test starts with none draining."""
    DRAIN.started = False


# Every write sent at once rather than as the loop's turn ends: uvicorn's MockLoop never ends a
# turn, and its tests read what the protocol wrote. The batching is ours to test (test_bad_input).
type(OUTBOX).LIMIT = 0

_results: dict[str, dict[str, str]] = {}
_supervised: list[str] = []
_bounded: list[object] = []
_RANK = {"passed": 0, "skipped": 1, "failed": 2}  # a test's outcome is its worst phase's


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the runs of uvicorn's h11 protocol: they do not run our code."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        protocol = callspec.params.get("http_protocol_cls") if callspec else None
        (keep if protocol in (None, HTTPTOOLS, ZTTP) else drop).append(item)
        module = getattr(item, "module", None)
        # Only the supervisor's own tests: others patch `Multiprocess` for `uvicorn.run`'s sake.
        if module is not None and module.__name__ == SUPERVISOR_TESTS:
            module.Multiprocess = UvicornShapedSupervisor
            _supervised.append(item.nodeid)
        if module is not None and module.__name__ == H2_TESTS and module not in _bounded:
            _bounded.append(module)
            _bound(module.MockLoop)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


def _bound(mock_loop: type) -> None:
    """A test that awaits a stream uvicorn refuses with 503 while draining would wait forever for
    ours, which serves it; the app then sees a cancellation, and the test fails, but ends."""
    run_one = mock_loop.run_one  # type: ignore[attr-defined]

    async def bounded(self: object) -> object:
        async with asyncio.timeout(MOCK_STEP_TIMEOUT):
            return await run_one(self)

    mock_loop.run_one = bounded  # type: ignore[attr-defined]


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
        "zttp": _qualified(zttp_impl.ZttpProtocol),
        "zttp_h2": _qualified(zttp_h2_impl.ZttpH2Protocol),
        "auto_zttp": _qualified(auto_zttp_impl.AutoZttpProtocol),
        "supervised": _supervised,
    }
    path = Path(os.environ["UVICORN_CONTRACT_RESULTS"])
    path.write_text(json.dumps({"swapped": swapped, "results": _results}, indent=1))


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
