"""HTTPS for real: `make run-tls` on each launcher, real handshakes, a real browser."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import httpx
import pytest
import trustme

from devtls.certs import CertPaths, ensure, project_name
from devtls.trust import CA, system
from tests.servers import ROOT, clean_env, run_launcher, serve, trusting

CHROMIUM = shutil.which("chromium")
CERTUTIL = shutil.which("certutil")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = CertPaths(tmp_path_factory.mktemp("certs"))
    ensure(paths)
    return paths


def make(target: str, *variables: str) -> list[str]:
    return ["make", "-s", "--no-print-directory", "-C", str(ROOT), target, *variables]


def handshake(port: int, context: ssl.SSLContext, host: str = "localhost") -> str:
    """A bare TLS handshake; returns the negotiated ALPN protocol."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.selected_alpn_protocol() or "none"


def tls11_client(ca: Path) -> ssl.SSLContext:
    context = trusting(ca)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point of the test
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer TLS 1.1
    return context


@pytest.fixture(scope="module")
def tls11_capable(certs: CertPaths) -> None:
    """Prove this machine's OpenSSL can speak TLS 1.1 at all, so a refusal is the server's."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.minimum_version = ssl.TLSVersion.TLSv1_1
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.load_cert_chain(certs.server, certs.server_key)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            with conn, server.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            handshake(listener.getsockname()[1], tls11_client(certs.ca))
        except ssl.SSLError as error:
            pytest.skip(f"this OpenSSL cannot offer TLS 1.1 at all: {error}")
        finally:
            thread.join(5)


@pytest.mark.parametrize("launcher", ["uvicorn", "gunicorn", "granian"])
@pytest.mark.usefixtures("tls11_capable")
def test_make_run_tls(launcher: str, certs: CertPaths, tmp_path: Path) -> None:
    argv = make("run-tls", f"LAUNCHER={launcher}", f"CERTS={certs.directory}")
    with serve(argv, tmp_path, ca=certs.ca, WEB_CONCURRENCY="2", HTTP2="true") as server:
        port = server.port
        info = httpx.get(server.url + "/info", verify=server.verify).json()
        assert (info["launcher"], info["workers"], info["tls"]) == (launcher, 2, True)
        # The certificate names both localhost and 127.0.0.1, and only our CA vouches for it.
        assert httpx.get(f"https://127.0.0.1:{port}/healthz", verify=server.verify).is_success
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            handshake(port, ssl.create_default_context())
        # OpenSSL answers with a protocol_version alert, rustls (granian) with handshake_failure.
        with pytest.raises(ssl.SSLError, match=r"(?i)version|protocol|handshake failure"):
            handshake(port, tls11_client(certs.ca))
        with httpx.Client(http2=True, verify=server.verify) as client:
            version = client.get(server.url + "/info").http_version
        assert (handshake(port, _alpn(certs.ca)), version) == ("h2", "HTTP/2")
        # A Python client that trusts the CA through the environment, as docs/https.md shows.
        script = "import httpx, sys; print(httpx.get(sys.argv[1]).json()['tls'])"
        python = subprocess.run(
            [sys.executable, "-c", script, server.url + "/info"],
            env=clean_env(SSL_CERT_FILE=str(certs.ca)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert python.stdout == "True\n", python.stderr
    assert f"{launcher}: serving tests.kitapp:app at https://localhost:{port}" in server.output()
    assert f"they trust {certs.ca}: `make trust`" in server.output()


def _alpn(ca: Path) -> ssl.SSLContext:
    context = trusting(ca)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def test_run_tls_with_fastapi_cli_is_refused(certs: CertPaths, tmp_path: Path) -> None:
    result = subprocess.run(
        make("run-tls", "LAUNCHER=fastapi", f"CERTS={certs.directory}"),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "error: fastapi-cli cannot honour TLS_CERTFILE: it has no option" in result.stderr
    assert "Launchers that can: uvicorn, gunicorn" in result.stderr
    assert "Traceback" not in result.stderr


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2
    assert result.stderr.startswith("error: " + message), result.stderr
    assert "Traceback" not in result.stderr


def test_key_that_does_not_match_the_certificate(certs: CertPaths, tmp_path: Path) -> None:
    other = CertPaths(tmp_path / "other")
    ensure(other)
    result = run_launcher(
        tmp_path, "uvicorn", TLS_CERTFILE=str(certs.server), TLS_KEYFILE=str(other.server_key)
    )
    assert_refused(
        result, f"TLS_KEYFILE='{other.server_key}' is not the private key of TLS_CERTFILE="
    )


def test_expired_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    leaf = ca.issue_cert("localhost", not_before=past - dt.timedelta(days=1), not_after=past)
    cert, key = tmp_path / "old.pem", tmp_path / "old-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    result = run_launcher(tmp_path, "uvicorn", TLS_CERTFILE=str(cert), TLS_KEYFILE=str(key))
    assert_refused(result, f"TLS_CERTFILE='{cert}' expired on {past:%Y-%m-%d}")


def test_missing_or_unreadable_files(tmp_path: Path) -> None:
    result = run_launcher(
        tmp_path, "uvicorn", TLS_CERTFILE="missing.pem", TLS_KEYFILE="missing-key.pem"
    )
    assert_refused(result, "bad configuration: TLS_CERTFILE='missing.pem' no such file")
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    result = run_launcher(
        tmp_path, "uvicorn", TLS_CERTFILE="garbage.pem", TLS_KEYFILE="garbage.pem"
    )
    assert_refused(result, "TLS_CERTFILE='garbage.pem' holds no PEM certificate")


@pytest.fixture
def browser_home(tmp_path: Path) -> Path:
    if not (CHROMIUM and CERTUTIL):
        pytest.skip("needs Debian's chromium and libnss3-tools (.ci/run installs them)")
    home = tmp_path / "home"
    home.mkdir()
    return home


def chromium_opens(url: str, home: Path, profile: Path) -> str:
    """What headless Chromium renders at `url`, with its own HOME (and so its own NSS store)."""
    assert CHROMIUM
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", url,
        ],
        env=clean_env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    return result.stdout


@pytest.mark.timeout(180)
def test_browser_trusts_after_make_trust(
    certs: CertPaths, browser_home: Path, tmp_path: Path
) -> None:
    stores = ["TRUST_STORES=nss", f"CERTS={certs.directory}"]  # never this machine's own store
    argv = make("run-tls", f"CERTS={certs.directory}")
    with serve(argv, tmp_path, ca=certs.ca, WEB_CONCURRENCY="1") as server:
        url = server.url + "/info"
        assert '"tls":true' not in chromium_opens(url, browser_home, tmp_path / "p1")

        env = clean_env(HOME=str(browser_home))
        trust = subprocess.run(make("trust", *stores), env=env, capture_output=True, text=True)
        assert f"trust: NSS {browser_home}/.pki/nssdb: trusted" in trust.stdout, trust
        again = subprocess.run(make("trust", *stores), env=env, capture_output=True, text=True)
        assert f"trust: NSS {browser_home}/.pki/nssdb: already trusted" in again.stdout
        assert '"tls":true' in chromium_opens(url, browser_home, tmp_path / "p2")

        untrust = subprocess.run(make("untrust", *stores), env=env, capture_output=True, text=True)
        assert f"trust: NSS {browser_home}/.pki/nssdb: removed" in untrust.stdout
        assert '"tls":true' not in chromium_opens(url, browser_home, tmp_path / "p3")


def test_firefox_profiles_are_trusted_too(certs: CertPaths, browser_home: Path) -> None:
    profile = browser_home / ".mozilla/firefox/abc.default-release"
    profile.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True)
    env = clean_env(HOME=str(browser_home))
    argv = [sys.executable, "-m", "devtls.trust", "install", str(certs.ca), "--store", "nss"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    assert f"trust: NSS {profile}: trusted" in out
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{profile}"], capture_output=True)
    assert f"{project_name()}-development-ca-".encode() in listed.stdout


def test_system_store_without_root_prints_the_exact_command(
    certs: CertPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not shutil.which("update-ca-certificates"):
        pytest.skip("no Debian system store on this machine")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as an ordinary user would run it
    ca = CA.read(certs.ca)
    anchor = f"/usr/local/share/ca-certificates/{ca.nickname}.crt"
    (line,) = system(ca, install=True)
    assert line == (
        f"the system store ({anchor}): not changed: it needs root. Run:\n"
        f"    sudo install -m 644 {certs.ca.resolve()} {anchor} && sudo update-ca-certificates"
    )
    assert not Path(anchor).exists()
