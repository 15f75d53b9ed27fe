"""Whether the served app has the kit's features, said by a worker once it has imported the app.

Light on purpose: an app without the features never imports `launchers.features`, so its
absence from `sys.modules` is the answer, and asking costs nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def warn_if_lacking(app: str) -> None:
    """One warning per launch when `app` was imported without `install(app)`: the first worker
    to find it marks the shared metrics directory, so that its siblings stay quiet."""
    features = sys.modules.get("launchers.features")
    if features is not None and features._installed:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        try:
            Path(directory, "lacking-said").touch(exist_ok=False)
        except FileExistsError:
            return
        except OSError:
            pass
    logging.getLogger("launchers").warning(
        "APP=%s does not call launchers.features.install(app), so it serves without /healthz, "
        "/readyz or /metrics, request ids, the access log or MAX_BODY_SIZE.",
        app,
    )
