"""Rename the service: `make rename NAME=billing-api` (`python scripts/rename.py billing-api`).

The service's name is spelled in a dozen places: the package (pyproject.toml, which also names
the development CA), the sample's API title (OpenTelemetry's `service.name` unless
`SERVICE_NAME` is set), the image and the compose project, the Kubernetes names, labels and
secret, the README and the docs (`docs/`, `mkdocs.yml`). The kit (`launchers/`) spells none
of them. This replaces the current name, the one pyproject.toml gives, wherever a file of the
tree spells it (also with `_` for `-`), and changes nothing else. Running it again with the same
name changes nothing; a name the code spells already (`app`, `fastapi`) is refused, so that a
later rename stays exact.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A DNS label, as Kubernetes names and labels need, that is also a package name.
VALID = re.compile(r"[a-z][a-z0-9-]{0,61}[a-z0-9]")
# Not the tree's own files: version control, environments, build output, caches, local data.
SKIPPED = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", "data"}
# The rename itself and its test, which spell example names and read the current one.
SELF = {"scripts/rename.py", "tests/test_rename.py"}


class RenameError(Exception):
    """Why the rename cannot be done, for the person who asked for it."""


def replacements(old: str, new: str) -> list[tuple[str, str]]:
    """The name as spelled in most places, and as Python spells a distribution's (`_`)."""
    pairs = [(old, new), (old.replace("-", "_"), new.replace("-", "_"))]
    return pairs[:1] if pairs[1][0] == old else pairs


def current_name(root: Path) -> str:
    try:
        return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        raise RenameError(f"{root / 'pyproject.toml'} gives no [project] name ({error}).") from None


def text_files(root: Path) -> Iterator[tuple[Path, str]]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if name not in SKIPPED and not name.endswith((".egg-info", "_cache"))
        )
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_symlink() or path.relative_to(root).as_posix() in SELF:
                continue  # a link's target is renamed where it lies, if in the tree
            try:
                # As bytes: line endings and all stay as they are.
                text = path.read_bytes().decode("utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # images, archives, binaries: they spell no name
            yield path, text


def rename(root: Path, new: str) -> list[Path]:
    """Replace the service's current name by `new` in every file that spells it; the files."""
    if not VALID.fullmatch(new):
        raise RenameError(
            f"NAME={new!r} is not a service name: use lowercase letters, digits and dashes, "
            "starting with a letter and ending with a letter or a digit, at most 63 characters "
            "(e.g. billing-api)."
        )
    old = current_name(root)
    if old == new:
        return []
    files = dict(text_files(root))
    pairs = replacements(old, new)
    # A later rename must find the service's name and nothing else: refuse a name the code
    # already spells (`app`, `fastapi`). The prose's examples (`*.md`) may use it.
    taken = sorted(
        str(path.relative_to(root))
        for path, text in files.items()
        if path.suffix != ".md" and _uses(text, pairs)
    )
    if taken:
        where = ", ".join(taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise RenameError(
            f"NAME={new!r} is spelled in the tree already ({where}): a later rename could not "
            "tell the service's name from it. Choose a name the code does not use yet."
        )
    changed = []
    for path, text in files.items():
        renamed = text
        for before, after in pairs:
            renamed = renamed.replace(before, after)
        if renamed != text:
            path.write_bytes(renamed.encode("utf-8"))
            changed.append(path)
    return changed


def _uses(text: str, pairs: list[tuple[str, str]]) -> bool:
    for before, _ in pairs:
        text = text.replace(before, "")
    return any(after in text for _, after in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/rename.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="the service's new name, e.g. billing-api")
    args = parser.parse_args(argv)
    try:
        old = current_name(ROOT)
        changed = rename(ROOT, args.name)
    except RenameError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not changed:
        print(f"rename: the service is named {args.name} already: nothing changed")
        return 0
    for path in changed:
        print(f"rename: {path.relative_to(ROOT)}")
    print(f"rename: {old} is now {args.name} in {len(changed)} files")
    if (ROOT / "certs" / "ca.pem").exists():
        print(
            "rename: certs/ca.pem keeps the old name; for a CA under the new one, `make untrust` "
            "(if you trusted it), delete certs/, then `make certs trust`"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
