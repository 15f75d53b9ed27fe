"""Install or remove the development CA where clients look for trust, as mkcert does.

`python -m devtls.trust install|uninstall [--store system] [--store nss] CA` (`make trust`,
`make untrust`):

- `system`: the operating system's store, which curl, wget and most non-browser clients read
  (Debian/Ubuntu `update-ca-certificates`, Fedora `update-ca-trust`, macOS `security`). It needs
  root: without it, the exact command to run is printed instead.
- `nss`: the NSS databases that Chromium (`~/.pki/nssdb`, created if absent) and Firefox (each
  profile under `$HOME`) read, through `certutil` from libnss3-tools.

Both are idempotent and say what they changed. A requested store left unchanged (no root, no
`certutil`) fails the run, after the line saying how to change it.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from devtls.certs import fingerprint


class Unchanged(str):
    """A store's line saying it could not be changed, and how to do it: the run fails."""


@dataclass(frozen=True)
class CA:
    path: Path
    nickname: str  # unique to this CA, so a new CA never collides with one trusted before

    @classmethod
    def read(cls, path: Path) -> CA:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        # Named after the CA's organisation, not this code's: a CA trusted before a rename
        # (`make rename`) is still found to remove.
        names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        organisation = str(names[0].value) if names else "development CA"
        prefix = re.sub(r"[^a-z0-9]+", "-", organisation.lower()).strip("-")
        return cls(path.resolve(), f"{prefix}-{fingerprint(cert)[:16]}")


def system(ca: CA, install: bool) -> list[str]:
    if sys.platform == "darwin":
        keychain = "/Library/Keychains/System.keychain"
        if install:
            command = ["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", keychain]
        else:
            command = ["security", "remove-trusted-cert", "-d"]
        where = "the macOS system keychain"
        return [
            _run_as_root([[*command, str(ca.path)]], where, "trusted" if install else "removed")
        ]
    for anchors, update in (
        (Path("/usr/local/share/ca-certificates"), ["update-ca-certificates"]),
        (Path("/etc/pki/ca-trust/source/anchors"), ["update-ca-trust", "extract"]),
    ):
        if anchors.is_dir() and shutil.which(update[0]):
            return [_anchor(ca, anchors / f"{ca.nickname}.crt", update, install)]
    return [
        Unchanged("system store: not changed: no update-ca-certificates or update-ca-trust found")
    ]


def _anchor(ca: CA, anchor: Path, update: list[str], install: bool) -> str:
    where = f"the system store ({anchor})"
    if install and anchor.exists() and anchor.read_bytes() == ca.path.read_bytes():
        return f"{where}: already trusted"
    if not install and not anchor.exists():
        return f"{where}: not trusted, nothing to remove"
    change = ["install", "-m", "644", str(ca.path), str(anchor)] if install else ["rm", str(anchor)]
    return _run_as_root([change, update], where, "trusted" if install else "removed")


def _run_as_root(commands: list[list[str]], where: str, done: str) -> str:
    if os.geteuid() != 0:
        line = " && ".join("sudo " + shlex.join(command) for command in commands)
        return Unchanged(f"{where}: not changed: it needs root. Run:\n    {line}")
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return f"{where}: {done}"


def nss(ca: CA, install: bool) -> list[str]:
    if not shutil.which("certutil"):
        return [
            Unchanged(
                "Chromium and Firefox: not changed: certutil is missing. Install libnss3-tools "
                "(Debian/Ubuntu) or nss-tools (Fedora), then run this again."
            )
        ]
    return [_nss_db(ca, db, install) for db in _nss_dbs(create=install)]


def _nss_dbs(create: bool) -> Iterator[str]:
    home = Path.home()
    chromium = home / ".pki/nssdb"
    if create and not chromium.exists():
        chromium.mkdir(parents=True)
        _certutil("-N", "-d", f"sql:{chromium}", "--empty-password")
    if (chromium / "cert9.db").exists():
        yield f"sql:{chromium}"
    for profiles in (home / ".mozilla/firefox", home / "snap/firefox/common/.mozilla/firefox"):
        for db in sorted(profiles.glob("*/cert9.db")):
            yield f"sql:{db.parent}"
        for db in sorted(profiles.glob("*/cert8.db")):
            yield f"dbm:{db.parent}"


def _nss_db(ca: CA, db: str, install: bool) -> str:
    present = _certutil("-L", "-d", db, "-n", ca.nickname, check=False).returncode == 0
    where = f"NSS {db.partition(':')[2]}"
    if install == present:
        return f"{where}: {'already trusted' if present else 'not trusted, nothing to remove'}"
    if install:
        _certutil("-A", "-d", db, "-t", "C,,", "-n", ca.nickname, "-i", str(ca.path))
        return f"{where}: trusted"
    _certutil("-D", "-d", db, "-n", ca.nickname)
    return f"{where}: removed"


def _certutil(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["certutil", *args], check=check, capture_output=True)


STORES: dict[str, Callable[[CA, bool], list[str]]] = {"system": system, "nss": nss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtls.trust",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["install", "uninstall"])
    parser.add_argument("ca", type=Path, help="the CA certificate, e.g. certs/ca.pem")
    parser.add_argument(
        "--store", action="append", choices=list(STORES), help="only these stores (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        ca = CA.read(args.ca)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or "not a PEM certificate"
        print(f"error: {args.ca} cannot be read as the CA certificate: {reason}.", file=sys.stderr)
        return 2
    unchanged = False
    for store in args.store or list(STORES):
        try:
            lines = STORES[store](ca, args.action == "install")
        except subprocess.CalledProcessError as error:
            stderr = error.stderr.decode(errors="replace").strip()
            print(f"error: {shlex.join(error.cmd)} failed: {stderr}", file=sys.stderr)
            return 1
        for line in lines:
            unchanged |= isinstance(line, Unchanged)
            print(f"trust: {line}", file=sys.stderr if isinstance(line, Unchanged) else sys.stdout)
    return 1 if unchanged else 0


if __name__ == "__main__":
    sys.exit(main())
