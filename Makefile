# One verb per target. Every install goes through uv and uv.lock: the first target that needs Python
# makes .venv with the machine's Python and syncs it to the lock, again whenever pyproject.toml or
# uv.lock changes. `make run` installs what the app runs on; `make test`, `lint` and `bench` add the
# development group. Nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# uv from PATH, else this version from PyPI, kept in .tools/ (`uv sync` removes from .venv
# whatever the lock does not name, uv included).
UV_VERSION := 0.13.10
UV ?= $(or $(shell command -v uv 2>/dev/null),.tools/uv/bin/uv)
# The machine's Python, never one uv downloads.
export UV_PYTHON := $(shell command -v $(PYTHON) 2>/dev/null || echo $(PYTHON))
export UV_PYTHON_DOWNLOADS := never
# Bytecode compiled once, at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (many
# images and CI machines), every start would compile every module again.
export UV_COMPILE_BYTECODE := 1
RUNTIME := $(VENV)/.synced-runtime
CERTS_TOOLS := $(VENV)/.synced-certs
DEV := $(VENV)/.synced-dev
LAUNCHER ?=
CERTS ?= certs
# The app's own settings models, listed in docs/settings.md's table after the kit's.
APP_SETTINGS ?= app.settings:Settings
TRUST_STORES ?= system nss

.DEFAULT_GOAL := help
.PHONY: help run run-uvicorn run-gunicorn run-fastapi run-granian run-gunicorn-asgi run-dev run-tls migrate certs trust untrust test bench lint format docs docs-serve rename upgrade clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.tools/uv/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--target .tools/uv uv==$(UV_VERSION)

# --locked: a uv.lock that pyproject.toml has outgrown is an error (`make upgrade` refreshes it).
# Each sync makes .venv exactly what its target needs; the stamps keep a larger install from being
# undone by a smaller target until pyproject.toml or uv.lock changes.
$(RUNTIME): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet
	@touch $@

$(CERTS_TOOLS): $(RUNTIME)
	$(UV) sync --locked --quiet --group certs
	@touch $@

$(DEV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet --group dev
	@touch $@ $(RUNTIME) $(CERTS_TOOLS)

run: $(RUNTIME) ## Serve the app with the default launcher (LAUNCHER=, else uvicorn)
	@exec $(PY) -m launchers $(LAUNCHER)

run-uvicorn: $(RUNTIME) ## Serve with uvicorn's multiprocess manager (spawn)
	@exec $(PY) -m launchers uvicorn

run-gunicorn: $(RUNTIME) ## Serve with gunicorn pre-fork and uvicorn workers
	@exec $(PY) -m launchers gunicorn

run-fastapi: $(RUNTIME) ## Serve with `fastapi run` (fastapi-cli)
	@exec $(PY) -m launchers fastapi

run-granian: $(RUNTIME) ## Serve with granian (Rust HTTP and TLS, spawned workers)
	@exec $(PY) -m launchers granian

run-gunicorn-asgi: $(RUNTIME) ## Serve with gunicorn pre-fork and gunicorn's own ASGI worker
	@exec $(PY) -m launchers gunicorn-asgi

run-dev: $(RUNTIME) ## Serve one worker that restarts on code changes, demo endpoints on
	@RELOAD=true DEMO_ENDPOINTS=true exec $(PY) -m launchers $(LAUNCHER)

run-tls: certs ## Serve over HTTPS with the development certificate (LAUNCHER=uvicorn|gunicorn|granian|gunicorn-asgi)
	@TLS_CERTFILE=$(CERTS)/server.pem TLS_KEYFILE=$(CERTS)/server-key.pem \
		exec $(PY) -m launchers $(LAUNCHER)

migrate: $(RUNTIME) ## Apply the database migrations (the launchers do it before they serve)
	@$(PY) -m launchers.migrate

certs: $(CERTS_TOOLS) ## Make the development CA (once) and a server certificate in certs/
	@$(PY) -m devtls.certs $(CERTS)

trust: certs ## Trust the development CA: system store, Chromium and Firefox (NSS)
	@$(PY) -m devtls.trust install $(CERTS)/ca.pem $(TRUST_STORES:%=--store %)

untrust: $(CERTS_TOOLS) ## Remove the development CA from those stores again
	@$(PY) -m devtls.trust uninstall $(CERTS)/ca.pem $(TRUST_STORES:%=--store %)

test: $(DEV) ## Run the whole test suite
	UV=$(UV) $(PY) -m pytest

bench: $(DEV) ## Measure every launcher and its peers side by side (BENCH_SECONDS=5, BENCH_ROUNDS=3, BENCH_REFERENCE=false)
	@$(PY) -m bench

lint: $(DEV) ## Check formatting, lint and types (ruff, mypy)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

format: $(DEV) ## Format and fix what ruff can
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

docs: $(DEV) ## Regenerate the settings table in docs/settings.md from the settings models
	$(PY) -m launchers.docs $(APP_SETTINGS)

# NO_MKDOCS_2_WARNING: Material prints a banner about MkDocs 2 on every build otherwise.
docs-serve: $(DEV) ## Read the docs locally at http://127.0.0.1:8001
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve -a 127.0.0.1:8001

rename: $(RUNTIME) ## Rename the service wherever its name is spelled: NAME=new-name
	@$(PY) scripts/rename.py -- "$(NAME)"

upgrade: | $(UV) ## Move uv.lock to the newest versions pyproject.toml allows, then sync
	$(UV) lock --upgrade
	$(UV) sync --locked --quiet --group dev
	@touch $(DEV) $(RUNTIME) $(CERTS_TOOLS)

clean: ## Remove the virtual environment, uv and caches
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
