"""Development certificates: a CA reused byte for byte, a server certificate reissued when due;
the stores that trust the CA, and a failure when one could not be changed."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from devtls import trust
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


def test_trust_fails_when_certutil_is_missing(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path / "certs")
    ensure(paths)
    home = tmp_path / "home"
    home.mkdir()
    bare = tmp_path / "bin"  # a PATH with no certutil on it
    bare.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "devtls.trust", "install", str(paths.ca), "--store", "nss"],
        env=clean_env(PATH=str(bare), HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 1, run
    assert "trust: Chromium and Firefox: not changed: certutil is missing. Install " in run.stderr
    assert "libnss3-tools" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (home / ".pki").exists()


def test_trust_fails_when_the_system_store_needs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = CertPaths(tmp_path / "certs")
    ensure(paths)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as an ordinary user would run it
    assert trust.main(["install", str(paths.ca), "--store", "system"]) == 1
    said = capsys.readouterr().err
    assert "not changed: " in said, said  # it needs root, with the command; or no store found


def test_a_trusted_ca_is_named_after_its_organisation(tmp_path: Path) -> None:
    """Not after the code's current name: a CA trusted before `make rename` is still found."""
    ca = trustme.CA(organization_name="old-name development CA")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    nickname = trust.CA.read(tmp_path / "ca.pem").nickname
    assert re.fullmatch(r"old-name-development-ca-[0-9a-f]{16}", nickname), nickname
