"""Development certificates: a CA made once and reused, and a server certificate it signs.

For development only. The CA's private key lies in `certs/ca-key.pem`: whoever reads it can
impersonate any site to a machine that trusts this CA. Keep it on the machine that made it.

`python -m devtls.certs [DIR]` (`make certs`) makes what is missing and reissues the server
certificate only when it is missing, its names changed, it nears expiry, or it no longer matches
its key or the CA, so that a CA trusted once stays trusted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import ipaddress
import os
import socket
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from launchers.errors import ConfigError, load_settings, report

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
# Apple platforms, and with them every browser there, reject certificates valid for longer.
VALIDITY = dt.timedelta(days=825)
RENEW_BEFORE = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(hours=1)
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"  # devtls runs from a checkout


@dataclass(frozen=True)
class CertPaths:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"


def ensure(
    paths: CertPaths, extra_names: Sequence[str] = (), now: dt.datetime | None = None
) -> list[str]:
    """Make or reuse the CA, issue the server certificate if needed; say what was done."""
    now = now or dt.datetime.now(dt.UTC)
    names = list(dict.fromkeys([*DEFAULT_NAMES, *extra_names]))
    paths.directory.mkdir(parents=True, exist_ok=True)
    ca, said = _ca(paths)
    reason = _reissue_reason(paths, ca, names, now)
    if reason is None:
        cert = x509.load_pem_x509_certificate(paths.server.read_bytes())
        return [*said, f"{paths.server} is current ({_describe(cert)})"]
    not_before = now - CLOCK_SKEW
    try:
        leaf = ca.issue_cert(
            *names,
            organization_name=f"{project_name()} development",
            not_before=not_before,
            not_after=not_before + VALIDITY,
        )
    except ValueError as error:  # e.g. a name that is neither a host name nor an address
        raise ConfigError(f"TLS_NAMES={','.join(extra_names)!r} is not valid: {error}.") from None
    _write(paths.server, b"".join(blob.bytes() for blob in leaf.cert_chain_pems), 0o644)
    _write(paths.server_key, leaf.private_key_pem.bytes(), 0o600)
    cert = x509.load_pem_x509_certificate(paths.server.read_bytes())
    return [*said, f"issued {paths.server} ({_describe(cert)}): {reason}"]


def project_name() -> str:
    """The checkout's `[project] name` (what `make rename` changes), which names its CA."""
    try:
        project = tomllib.loads(PYPROJECT.read_text())["project"]
        return str(project["name"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "fastapi"  # a copy without its pyproject.toml still gets a CA


def names_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts = san.get_values_for_type(x509.DNSName)
    return hosts + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _ca(paths: CertPaths) -> tuple[trustme.CA, list[str]]:
    if paths.ca.exists() and paths.ca_key.exists():
        try:
            return trustme.CA.from_pem(paths.ca.read_bytes(), paths.ca_key.read_bytes()), []
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"{paths.ca} or {paths.ca_key} is not a readable PEM certificate and key "
                f"({error}). Restore them, or delete both to make a new CA (which must then be "
                "trusted again)."
            ) from None
    if paths.ca.exists() or paths.ca_key.exists():
        present, missing = (
            (paths.ca, paths.ca_key) if paths.ca.exists() else (paths.ca_key, paths.ca)
        )
        raise ConfigError(
            f"{present} exists but {missing} does not. Restore {missing}, or delete {present} to "
            "make a new CA (which must then be trusted again)."
        )
    ca = trustme.CA(
        organization_name=f"{project_name()} development CA",
        organization_unit_name=f"{getpass.getuser()}@{socket.gethostname()}",
    )
    _write(paths.ca, ca.cert_pem.bytes(), 0o644)
    _write(paths.ca_key, ca.private_key_pem.bytes(), 0o600)
    return ca, [f"made a new development CA {paths.ca}: trust it once with `make trust`"]


def _reissue_reason(
    paths: CertPaths, ca: trustme.CA, names: list[str], now: dt.datetime
) -> str | None:
    if not paths.server.exists() or not paths.server_key.exists():
        return "it was missing"
    try:
        cert = x509.load_pem_x509_certificate(paths.server.read_bytes())
        key = load_pem_private_key(paths.server_key.read_bytes(), password=None)
    except ValueError:
        return "the old one was unreadable"
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    if _normal(names_of(cert)) != _normal(names):
        return f"its names changed (were {', '.join(names_of(cert))})"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"the old one expires {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.issuer != ca_cert.subject or not _signed_by(cert, ca_cert):
        return "the old one was not signed by the current CA"
    if _public(key.public_key()) != _public(cert.public_key()):
        return "the old key did not match it"
    return None


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _normal(names: Sequence[str]) -> set[str]:
    normal = set()
    for name in names:
        try:
            normal.add(str(ipaddress.ip_address(name)))
        except ValueError:
            normal.add(name.lower())
    return normal


def _describe(cert: x509.Certificate) -> str:
    return f"{', '.join(names_of(cert))}; valid until {cert.not_valid_after_utc:%Y-%m-%d}"


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode, so a private key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # the file may have existed with a wider mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtls.certs", description=__doc__)
    parser.add_argument("directory", nargs="?", default="certs", type=Path)
    args = parser.parse_args(argv)
    try:
        for line in ensure(CertPaths(args.directory), load_settings().tls_names):
            print(f"certs: {line}")
    except ConfigError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
