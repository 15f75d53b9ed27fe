# One verb per target. The first target that needs Python makes .venv and installs the project
# into it, and installs again whenever pyproject.toml changes: nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.installed-bench
LAUNCHER ?=
CERTS ?= certs
# The app's own settings models, listed in the README's settings table after the kit's.
APP_SETTINGS ?= app.settings:Settings
TRUST_STORES ?= system nss

.DEFAULT_GOAL := help
.PHONY: help run run-uvicorn run-gunicorn run-fastapi run-granian run-gunicorn-asgi run-dev run-tls migrate certs trust untrust test bench lint format docs rename clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --editable '.[dev]'
	@touch $@

run: $(INSTALLED) ## Serve the app with the default launcher (LAUNCHER=, else uvicorn)
	@exec $(PY) -m launchers $(LAUNCHER)

run-uvicorn: $(INSTALLED) ## Serve with uvicorn's multiprocess manager (spawn)
	@exec $(PY) -m launchers uvicorn

run-gunicorn: $(INSTALLED) ## Serve with gunicorn pre-fork and uvicorn workers
	@exec $(PY) -m launchers gunicorn

run-fastapi: $(INSTALLED) ## Serve with `fastapi run` (fastapi-cli)
	@exec $(PY) -m launchers fastapi

run-granian: $(INSTALLED) ## Serve with granian (Rust HTTP and TLS, spawned workers)
	@exec $(PY) -m launchers granian

run-gunicorn-asgi: $(INSTALLED) ## Serve with gunicorn pre-fork and gunicorn's own ASGI worker
	@exec $(PY) -m launchers gunicorn-asgi

run-dev: $(INSTALLED) ## Serve one worker that restarts on code changes, demo endpoints on
	@RELOAD=true DEMO_ENDPOINTS=true exec $(PY) -m launchers $(LAUNCHER)

run-tls: certs ## Serve over HTTPS with the development certificate (LAUNCHER=uvicorn|gunicorn|granian|gunicorn-asgi)
	@TLS_CERTFILE=$(CERTS)/server.pem TLS_KEYFILE=$(CERTS)/server-key.pem \
		exec $(PY) -m launchers $(LAUNCHER)

migrate: $(INSTALLED) ## Apply the database migrations (the launchers do it before they serve)
	@$(PY) -m launchers.migrate

certs: $(INSTALLED) ## Make the development CA (once) and a server certificate in certs/
	@$(PY) -m devtls.certs $(CERTS)

trust: certs ## Trust the development CA: system store, Chromium and Firefox (NSS)
	@$(PY) -m devtls.trust install $(CERTS)/ca.pem $(TRUST_STORES:%=--store %)

untrust: $(INSTALLED) ## Remove the development CA from those stores again
	@$(PY) -m devtls.trust uninstall $(CERTS)/ca.pem $(TRUST_STORES:%=--store %)

test: $(INSTALLED) ## Run the whole test suite
	$(PY) -m pytest

$(BENCH_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet --disable-pip-version-check --editable '.[dev,bench]'
	@touch $@

bench: $(BENCH_INSTALLED) ## Measure every launcher and its peers side by side (BENCH_SECONDS=5, BENCH_ROUNDS=3)
	@$(PY) -m bench

# mypy checks the bench too, against matplotlib's own types: lint installs what the bench needs.
lint: $(BENCH_INSTALLED) ## Check formatting, lint and types (ruff, mypy)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

format: $(INSTALLED) ## Format and fix what ruff can
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

docs: $(INSTALLED) ## Regenerate the README's settings table from the settings models
	$(PY) -m launchers.docs $(APP_SETTINGS)

rename: $(INSTALLED) ## Rename the service wherever its name is spelled: NAME=new-name
	@$(PY) scripts/rename.py -- "$(NAME)"

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
