"""Development certificates: a CA reused byte for byte, a server certificate reissued when due."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from devtls.certs import VALIDITY, CertPaths, ensure, names_of
from launchers.errors import ConfigError
from tests.servers import clean_env


def server_cert(paths: CertPaths) -> x509.Certificate:
    return x509.load_pem_x509_certificate(paths.server.read_bytes())


def test_makes_ca_and_server_certificate_with_private_keys_0600(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path / "certs")
    said = ensure(paths)
    assert said[0].startswith(f"made a new development CA {paths.ca}")
    assert said[1].startswith(f"issued {paths.server} (localhost, 127.0.0.1, ::1; valid until ")
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for public in (paths.ca, paths.server):
        assert stat.S_IMODE(public.stat().st_mode) == 0o644
    cert = server_cert(paths)
    assert names_of(cert) == ["localhost", "127.0.0.1", "::1"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == VALIDITY
    assert dt.timedelta(days=825) >= VALIDITY


def test_second_run_keeps_everything_byte_for_byte(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    ensure(paths)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    (said,) = ensure(paths)
    assert said.startswith(f"{paths.server} is current")
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_changed_names_reissue_the_server_certificate_but_keep_the_ca(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    ensure(paths)
    ca, old = paths.ca.read_bytes(), paths.server.read_bytes()
    (said,) = ensure(paths, ["myapp.test"])
    assert said.endswith("its names changed (were localhost, 127.0.0.1, ::1)")
    assert paths.ca.read_bytes() == ca
    assert paths.server.read_bytes() != old
    assert names_of(server_cert(paths)) == ["localhost", "myapp.test", "127.0.0.1", "::1"]


def test_near_expiry_reissues(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    ensure(paths)
    later = server_cert(paths).not_valid_after_utc - dt.timedelta(days=10)
    (said,) = ensure(paths, now=later)
    assert "the old one expires" in said
    assert server_cert(paths).not_valid_after_utc > later + dt.timedelta(days=800)


def test_mismatched_key_or_foreign_ca_reissues(tmp_path: Path) -> None:
    paths, other = CertPaths(tmp_path / "a"), CertPaths(tmp_path / "b")
    ensure(paths)
    ensure(other)
    paths.server_key.write_bytes(other.server_key.read_bytes())
    assert ensure(paths)[0].endswith("the old key did not match it")
    paths.server.write_bytes(other.server.read_bytes())
    paths.server_key.write_bytes(other.server_key.read_bytes())
    assert ensure(paths)[0].endswith("the old one was not signed by the current CA")


def test_half_a_ca_is_refused_not_replaced(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    ensure(paths)
    paths.ca_key.unlink()
    with pytest.raises(ConfigError, match=r"ca\.pem exists but .*ca-key\.pem does not"):
        ensure(paths)


def test_make_certs_from_the_command_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devtls.certs", str(tmp_path / "c")],
        env=clean_env(TLS_NAMES="myapp.test, api.myapp.test"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert "localhost, myapp.test, api.myapp.test, 127.0.0.1, ::1" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "devtls.certs", str(tmp_path / "c")],
        env=clean_env(TLS_NAMES="bad name"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: TLS_NAMES='bad name' is not valid")
    assert "Traceback" not in bad.stderr
