"""gunicorn's configuration module: `gunicorn --config python:launchers.gunicorn_conf`.

gunicorn takes this module's globals as its settings (those whose names it knows, so the imports
below must not be named like one, e.g. `config`); their values come from the one `Settings`.
"""

from app.settings import Settings
from launchers import gunicorn, gunicorn_hooks

gunicorn_hooks.share_metrics()
globals().update(gunicorn.config(Settings()))
