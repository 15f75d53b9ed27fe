"""gunicorn's configuration module: `gunicorn --config python:launchers.gunicorn.conf`.

gunicorn takes this module's globals as its settings (those whose names it knows, so the imports
below must not be named like one, e.g. `config`); their values come from the one `Settings`,
translated by the launcher that `LAUNCHER` names (`python -m launchers` sets it): gunicorn's own
ASGI worker for `gunicorn-asgi`, uvicorn's otherwise.
"""

from launchers import gunicorn
from launchers.gunicorn import asgi as gunicorn_asgi
from launchers.gunicorn import hooks as gunicorn_hooks
from launchers.settings import Settings

gunicorn_hooks.share_metrics()
_settings = Settings()
_launcher = gunicorn_asgi if _settings.launcher == "gunicorn-asgi" else gunicorn
globals().update(_launcher.config(_settings))
