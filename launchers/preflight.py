"""Checks made before a server starts, so that its failures read as plain sentences."""

from __future__ import annotations

import ast
import datetime as dt
import errno
import importlib.util
import socket
import ssl
from pathlib import Path

from launchers import LAUNCHERS, load
from launchers.command import Launcher
from launchers.errors import ConfigError
from launchers.settings import Settings


def server_settings() -> frozenset[str]:
    """The settings some launcher passes, refuses or ignores: the others (the app's own, the
    launcher's) are no server's business, and draw no warning."""
    known: set[str] = set()
    for name in LAUNCHERS:
        launcher = load(name)
        known |= set(launcher.OPTIONS) | launcher.REFUSED | set(launcher.IGNORED)
    return frozenset(known)


def unsupported(name: str, launcher: Launcher, settings: Settings) -> list[str]:
    """Warnings for settings this launcher cannot express; ConfigError for those it refuses.
    They name the setting, never its value: any setting may hold a secret."""
    ignored = []
    for field in sorted(server_settings() - set(launcher.OPTIONS), key=_declared):
        value = getattr(settings, field)
        able = [other for other in LAUNCHERS if field in load(other).OPTIONS]
        if field in launcher.REFUSED and value is not None:
            raise ConfigError(
                f"{name} cannot honour {field.upper()}: it has no option for it, and starting "
                f"without it would be wrong. Launchers that can: {', '.join(able)} "
                f"(LAUNCHER={able[0]})."
            )
        instead = launcher.IGNORED.get(field)
        if field not in launcher.REFUSED and value != instead:
            ignored.append(f"{field.upper()} (it uses {instead!r}; {_listed(able)} can)")
    if not ignored:
        return []
    return [f"{name} has no option for {', '.join(ignored)}."]


def _declared(field: str) -> int:
    return list(Settings.model_fields).index(field)


def _listed(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)


def check_app(settings: Settings) -> None:
    """Refuse an `APP` whose module cannot be found, or whose source does not define the
    attribute, by name, before any worker tries it. Read, not imported: importing the app is the
    workers' job, and would cost the launcher its start-up time and memory."""
    module, _, attribute = settings.app.partition(":")
    try:
        found = importlib.util.find_spec(module)
    except ImportError as error:  # a parent package is missing, or fails to import
        found, reason = None, str(error)
    else:
        reason = f"no module named {module!r}"
    if found is None:
        raise ConfigError(
            f"APP={settings.app!r} cannot be served: {reason} (run from the directory that "
            "holds it, or install it; APP is module:attribute, e.g. app.main:app)."
        )
    name = attribute.partition(".")[0]
    if found.origin and found.origin.endswith(".py"):
        source = Path(found.origin)
        where = source.relative_to(Path.cwd()) if source.is_relative_to(Path.cwd()) else source
        names = _top_level_names(settings.app, source, where)
        if names is not None and name not in names:
            raise ConfigError(
                f"APP={settings.app!r} cannot be served: {where} defines no {name!r} "
                "(APP is module:attribute, e.g. app.main:app)."
            )


_DYNAMIC = {"globals", "vars", "setattr", "exec"}


def _top_level_names(app: str, source: Path, where: Path) -> set[str] | None:
    """The names a module's source binds at its top level; None where the source alone cannot
    tell (`from x import *`, a module `__getattr__`, `globals()`, an unreadable file)."""
    try:
        tree = ast.parse(source.read_bytes(), str(where))
    except OSError:
        return None
    except SyntaxError as error:
        raise ConfigError(
            f"APP={app!r} cannot be served: {error.filename}, line {error.lineno}: {error.msg}."
        ) from None
    if any(isinstance(node, ast.Name) and node.id in _DYNAMIC for node in ast.walk(tree)):
        return None  # names bound at run time: only an import would tell
    names: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:  # every statement at the top level, or in a top-level if, try, with or for
        node = todo.pop()
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            return None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)  # its body binds names of its own scope
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return None if "__getattr__" in names else names


def check_tls(settings: Settings, now: dt.datetime | None = None) -> None:
    """Refuse unreadable, expired or mismatched certificate files before any worker starts."""
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        return
    cert, key = settings.tls_certfile, settings.tls_keyfile
    now = now or dt.datetime.now(dt.UTC)
    for variable, path in (("TLS_CERTFILE", cert), ("TLS_KEYFILE", key)):
        try:
            Path(path).read_bytes()
        except OSError as error:
            raise ConfigError(f"{variable}={path!r} cannot be read: {error.strerror}.") from None
    from cryptography import x509  # only with TLS: it weighs on every launch

    try:
        leaf = x509.load_pem_x509_certificates(Path(cert).read_bytes())[0]
    except ValueError:
        raise ConfigError(f"TLS_CERTFILE={cert!r} holds no PEM certificate.") from None
    if leaf.not_valid_after_utc <= now:
        raise ConfigError(
            f"TLS_CERTFILE={cert!r} expired on {leaf.not_valid_after_utc:%Y-%m-%d}: issue a new "
            "one (`make certs` renews the development certificate)."
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            problem = f"TLS_KEYFILE={key!r} is not the private key of TLS_CERTFILE={cert!r}."
        else:
            problem = f"TLS_KEYFILE={key!r} cannot be used with TLS_CERTFILE={cert!r}: {error}."
        raise ConfigError(problem) from None


def check_port(settings: Settings) -> None:
    """Bind the address once, as the server will, to report a busy port by name."""
    host, port = settings.host, settings.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        problem = f"HOST={host!r} is not an address to listen on ({error.strerror})."
        raise ConfigError(problem) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            raise ConfigError(_bind_problem(host, port, error)) from None


def _bind_problem(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"PORT={port}: {host}:{port} is already in use by another process. Stop that "
            "process or set PORT to a free port."
        )
    if error.errno == errno.EACCES:
        return f"PORT={port}: binding ports below 1024 needs privileges. Use PORT=8000 or above."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"HOST={host!r} is not an address of this machine, so nothing can listen on it."
    return f"cannot listen on HOST={host!r} PORT={port}: {error.strerror}."
