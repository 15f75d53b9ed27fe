"""The granian launcher's process: `python -m launchers.granian`.

It builds `granian.Granian` from the one `Settings`, through the same translation that
`python -m launchers granian --print` shows, and serves, the workers sharing one metrics
directory that outlives each of them.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from pkgutil import resolve_name
from typing import Any

from granian import Granian
from granian._internal import load_target
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

from launchers import granian
from launchers.granian.signals import in_worker, keep_stop_signals
from launchers.installed import warn_if_lacking
from launchers.metrics_dir import shared_metrics_dir
from launchers.settings import Settings


def main() -> int:
    options = granian.config(Settings())
    options |= {
        "interface": Interfaces(options["interface"]),
        "http": HTTPModes(options["http"]),
        "log_level": LogLevels(options["log_level"]),
        "http1_settings": HTTP1Settings(**options["http1_settings"]),
        "reload_filter": resolve_name(options["reload_filter"]),
        "ssl_cert": options["ssl_cert"] and Path(options["ssl_cert"]),
        "ssl_key": options["ssl_key"] and Path(options["ssl_key"]),
    }
    # granian handles INT, TERM and HUP only. SIGTTIN and SIGTTOU, which scale the other managers,
    # would stop (suspend) its manager by default, a SIGTERM then waiting for a SIGCONT.
    for unscaled in (signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(unscaled, signal.SIG_IGN)
    keep_stop_signals()
    with shared_metrics_dir():
        Granian(**options).serve(target_loader=_load)
    return 0


def _load(target: str, *args: Any, **kwargs: Any) -> Any:
    """granian's own loader, in each worker, then the check that the app has the kit's parts."""
    in_worker()
    app = load_target(target, *args, **kwargs)
    warn_if_lacking(target)
    return app


if __name__ == "__main__":
    sys.exit(main())
