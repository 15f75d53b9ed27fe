"""gunicorn server hooks, named in the gunicorn launcher's configuration."""

from __future__ import annotations

import gc
from contextlib import ExitStack
from typing import Any

from launchers.metrics_dir import mark_dead, shared_metrics_dir

_counts: dict[str, int] = {}
_exit = ExitStack()  # what on_exit undoes
_metrics: list[object] = []  # the shared metrics directory, once made


def share_metrics() -> None:
    """Called when gunicorn reads its configuration (again on each reload): before it preloads
    the app, since prometheus-client must find PROMETHEUS_MULTIPROC_DIR when first imported, and
    before the first fork."""
    if not _metrics:
        _metrics.append(_exit.enter_context(shared_metrics_dir()))


def on_starting(arbiter: Any) -> None:
    # gunicorn's SIGINT is a quick shutdown that drops in-flight requests; make it drain like
    # SIGTERM, as under the uvicorn launcher. A second Ctrl-C still stops at once: the terminal
    # sends it to the workers too, and uvicorn force-exits on a second SIGINT.
    arbiter.handle_int = arbiter.handle_term
    if arbiter.cfg.preload_app:
        arbiter.spawn_workers = lambda: _spawn_at_once(arbiter)


def _spawn_at_once(arbiter: Any) -> None:
    """gunicorn's spawn_workers, without its pause of up to 0.1 s after each fork, which spreads
    the workers' imports of the app over time: preloaded workers import nothing, so the pauses
    would be much of their start-up (docs/performance.md)."""
    for _ in range(arbiter.num_workers - len(arbiter.WORKERS)):
        arbiter.spawn_worker()


def nworkers_changed(arbiter: Any, new_value: int, old_value: int | None) -> None:
    _counts["previous"] = old_value or new_value


def on_reload(arbiter: Any) -> None:
    # A reload re-reads the configuration, which resets the count that SIGTTIN/SIGTTOU changed
    # (gunicorn's setup() has just set it, reporting the scaled count as the old value): keep it.
    scaled = _counts.get("previous", arbiter.num_workers)
    arbiter.cfg.set("workers", scaled)
    arbiter.num_workers = scaled


def pre_fork(arbiter: Any, worker: Any) -> None:
    if arbiter.cfg.preload_app:
        # Move the preloaded app's objects out of the garbage collector's reach: a collection in
        # a worker would otherwise write to every one of them and unshare their memory pages.
        # Collect once, before the first fork; later forks only freeze what is new.
        if not gc.get_freeze_count():
            gc.collect()
        gc.freeze()


def child_exit(arbiter: Any, worker: Any) -> None:
    mark_dead(worker.pid)


def on_exit(arbiter: Any) -> None:
    _exit.close()
