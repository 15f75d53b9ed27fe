# syntax=docker/dockerfile:1
# The app's image: `docker build -t fastapi-launchers .`, then
# `docker run -p 8000:8000 fastapi-launchers`. Settings are environment variables
# (docs/settings.md).

ARG PYTHON_IMAGE=python:3.13-slim-trixie
# uv as its documentation puts it in an image: copied from its own, pinned, image.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.10

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# The image's own Python, never one uv downloads; bytecode compiled once, here, rather than by
# every container at start (its root is read-only); the platform's certificates, so that a
# proxy's CA added to them is trusted.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_SYSTEM_CERTS=true
# strip: some wheels ship their compiled extensions with debugging symbols (uvloop's are most of
# its weight), which a running service never reads. The build stage is thrown away: no version
# pin, whatever binutils the base's Debian has will do.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, exactly as uv.lock pins them (--locked: a stale lock fails the build), in a
# layer of their own: rebuilt when the lock changes, not on every change to the code.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project \
    && find /venv -name '*.so*' -type f -exec strip --strip-unneeded {} +
# The whole context (.dockerignore keeps out what the image does not run): a new package of yours
# reaches the image as it reaches the wheel, by package discovery, with no line added here.
COPY . ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

FROM ${PYTHON_IMAGE}
# An unprivileged user with a fixed uid; USER names it by number, so that Kubernetes can check
# runAsNonRoot (it cannot resolve a name).
RUN useradd --no-log-init --uid 10001 --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin app
COPY --from=build /venv /venv
WORKDIR /srv
RUN mkdir data && chown 10001 data
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"]
# Exec form, through our launcher: it validates the settings, applies the migrations, then
# becomes the server in its own process, so `docker stop`'s SIGTERM reaches the manager, which
# drains.
CMD ["python", "-m", "launchers"]
