"""The app's migrations, run once by the launcher before any worker starts (`MIGRATE`).

What they are is the app's business: `MIGRATIONS` names a function (by default
`migrations:upgrade` in the package of `APP`), called with no argument. A `ConfigError` it raises
is reported as the launcher's own, one paragraph. `python -m launchers.migrate` runs it alone.
"""

from __future__ import annotations

import sys
from pkgutil import resolve_name

from launchers import logs
from launchers.errors import ConfigError, load_settings, report
from launchers.settings import Settings


def upgrade(settings: Settings) -> None:
    function = settings.migrations_function
    if function is None:
        return
    try:
        run = resolve_name(function)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"MIGRATIONS={function!r} cannot be imported: {error}.") from None
    run()


def main() -> int:
    try:
        settings = load_settings()
        logs.configure(settings)  # what it applies is logged like everything else
        upgrade(settings)
    except ConfigError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
