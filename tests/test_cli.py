"""`python -m launchers`: --print, and bad configuration reported as one paragraph."""

from __future__ import annotations

import errno
import socket
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from launchers import LAUNCHERS, load
from launchers.cli import main
from launchers.errors import from_validation
from launchers.preflight import _bind_problem, unsupported
from launchers.settings import Settings
from tests.servers import free_port, run_launcher


def assert_clear_error(result: subprocess.CompletedProcess[str], *culprits: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, "one paragraph"
    assert "Traceback" not in result.stderr + result.stdout
    for culprit in culprits:
        assert culprit in result.stderr


def test_print_shows_the_native_command(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", "--print", WEB_CONCURRENCY="2", PORT="8123")
    assert result.returncode == 0
    assert result.stdout.startswith("LAUNCHER=uvicorn WEB_CONCURRENCY=2 ")
    assert "-m launchers.uvicorn\n" in result.stdout
    assert "    port=8123,\n    workers=2,\n" in result.stdout


def test_default_launcher_comes_from_the_launcher_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAUNCHER", "fastapi")
    assert main(["--print"]) == 0
    assert "LAUNCHER=fastapi-cli " in capsys.readouterr().out


def test_an_empty_setting_is_an_unset_one(tmp_path: Path) -> None:
    """`make run LAUNCHER=` passes LAUNCHER as an empty string: the default, not an error."""
    result = run_launcher(tmp_path, "--print", LAUNCHER="", WEB_CONCURRENCY="", PORT="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("LAUNCHER=uvicorn WEB_CONCURRENCY=")
    assert "    port=8000,\n" in result.stdout


def test_web_concurrency_not_a_number(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", WEB_CONCURRENCY="abc")
    assert_clear_error(result, "WEB_CONCURRENCY='abc' is not a whole number")


def test_port_out_of_range(tmp_path: Path) -> None:
    assert_clear_error(
        run_launcher(tmp_path, "gunicorn", PORT="70000"), "PORT='70000' must be at most 65535"
    )


def test_several_problems_named_at_once_and_dotenv_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=loud\n")
    result = run_launcher(tmp_path, "uvicorn", RELOAD="maybe")
    assert_clear_error(
        result, "RELOAD='maybe' is not true or false", "LOG_LEVEL='loud' (from .env)"
    )


def test_tls_files_must_exist_and_come_in_pairs(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", TLS_CERTFILE="nope.pem")
    assert_clear_error(result, "TLS_CERTFILE='nope.pem' no such file")
    (tmp_path / "cert.pem").write_text("x")
    result = run_launcher(tmp_path, "uvicorn", TLS_CERTFILE="cert.pem")
    assert_clear_error(result, "TLS_CERTFILE and TLS_KEYFILE go together")


def test_unknown_launcher(tmp_path: Path) -> None:
    assert_clear_error(
        run_launcher(tmp_path, "hypercorn"), "launcher 'hypercorn' is unknown", "gunicorn"
    )
    assert_clear_error(run_launcher(tmp_path, LAUNCHER="nginx"), "LAUNCHER='nginx' is unknown")


def test_busy_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for name in ("uvicorn", "gunicorn", "fastapi"):
            result = run_launcher(tmp_path, name, PORT=str(port))
            assert_clear_error(result, f"PORT={port}: 127.0.0.1:{port} is already in use")


def test_host_that_is_not_ours(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", HOST="192.0.2.1", PORT=str(free_port()))
    assert_clear_error(result, "HOST='192.0.2.1' is not an address of this machine")


def test_fastapi_cli_refuses_tls(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    result = run_launcher(tmp_path, "fastapi", TLS_CERTFILE="c.pem", TLS_KEYFILE="k.pem")
    assert_clear_error(result, "fastapi-cli cannot honour TLS_CERTFILE: it has no option")
    assert "c.pem" not in result.stderr


def test_dotenv_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"PORT=\xff\xfe\n")
    assert_clear_error(
        run_launcher(tmp_path, "uvicorn"), ".env is not UTF-8 text (invalid start byte"
    )


def test_dotenv_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    assert_clear_error(run_launcher(tmp_path, "uvicorn"), ".env cannot be read: Is a directory.")


def test_dotenv_line_that_is_not_an_assignment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# settings\nPORT=8001\nAPI_TOKEN s3cret\n")
    result = run_launcher(tmp_path, "uvicorn")
    assert_clear_error(result, ".env line 3 is not NAME=value.")
    assert "s3cret" not in result.stderr  # the line may be a secret's


def test_misspelt_setting_in_dotenv_is_named_with_its_likely_meaning(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEB_CONCURENCY=1\nlog_levl=debug\nPOSTGRES_PASSWORD=pw\n")
    result = run_launcher(tmp_path, "uvicorn", "--print")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: .env sets WEB_CONCURENCY, which is no setting: did you mean WEB_CONCURRENCY?",
        "warning: .env sets log_levl, which is no setting: did you mean LOG_LEVEL?",
    ]  # a key of another tool's, like nothing here, draws nothing


def test_warnings_never_show_a_value(tmp_path: Path) -> None:
    result = run_launcher(
        tmp_path, "granian", "--print", MAX_REQUESTS="12345", MAX_REQUESTS_JITTER="678"
    )
    assert result.returncode == 0, result.stderr
    assert "MAX_REQUESTS (it uses 0; uvicorn" in result.stderr  # its own default, not ours
    assert "12345" not in result.stderr
    assert "678" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MAX_BODY_SIZE", "lots", "MAX_BODY_SIZE='lots' is not a size such as 16KiB, 1MiB or 50MB"),
        ("MAX_HEADER_SIZE", "0", "MAX_HEADER_SIZE='0' must be more than 0"),
        ("HEADER_TIMEOUT", "-1", "HEADER_TIMEOUT='-1' must be more than 0"),
        ("WORKER_TIMEOUT", "soon", "WORKER_TIMEOUT='soon' is not a whole number"),
        ("MAX_CONNECTIONS", "0", "MAX_CONNECTIONS='0' must be at least 1"),
        ("MAX_REQUESTS_JITTER", "10", "MAX_REQUESTS_JITTER needs MAX_REQUESTS"),
    ],
)
def test_nonsense_limits(tmp_path: Path, variable: str, value: str, problem: str) -> None:
    assert_clear_error(run_launcher(tmp_path, "gunicorn", **{variable: value}), problem)


def test_privileged_port_is_explained() -> None:
    # Root may bind any port, and the tests may run as root: check the sentence itself.
    error = OSError(errno.EACCES, "Permission denied")
    assert _bind_problem("0.0.0.0", 80, error) == (
        "PORT=80: binding ports below 1024 needs privileges. Use PORT=8000 or above."
    )


class YourSettings(Settings):
    """The settings model with fields of a user's own, as they would add them."""

    payments_api_token: SecretStr | None = None
    payments_region: str = "eu"
    payments_retries: int = 3


def test_a_field_of_your_own_draws_no_warning_from_any_launcher() -> None:
    settings = YourSettings(payments_api_token="s3cret-token", payments_region="us")
    for name in LAUNCHERS:
        warnings = " ".join(unsupported(name, load(name), settings))
        assert "PAYMENTS" not in warnings
        assert "s3cret" not in warnings


def test_a_secret_that_is_the_culprit_is_still_not_shown() -> None:
    environ = {"PAYMENTS_API_TOKEN": "s3cret-token", "PAYMENTS_RETRIES": "many"}
    with pytest.raises(ValidationError) as caught:
        YourSettings.model_validate(
            {"payments_api_token": ["s3cret-token"], "payments_retries": "many"}
        )
    message = str(from_validation(caught.value, environ, YourSettings))
    assert "PAYMENTS_API_TOKEN (value hidden) is not valid" in message
    assert "PAYMENTS_RETRIES='many' is not a whole number" in message
    assert "s3cret" not in message
