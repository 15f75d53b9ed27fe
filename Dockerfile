# syntax=docker/dockerfile:1
# The app's image: `docker build -t fastapi-launchers .`, then
# `docker run -p 8000:8000 fastapi-launchers`. Settings are environment variables (README).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /venv
# Dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml changes,
# not on every change to the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /venv/bin/pip install -r requirements.txt
# The whole context (.dockerignore keeps out what the image does not run): a new package of yours
# reaches the image as it reaches the wheel, by package discovery, with no line added here.
COPY . ./
RUN /venv/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
# An unprivileged user with a fixed uid; USER names it by number, so that Kubernetes can check
# runAsNonRoot (it cannot resolve a name).
RUN useradd --system --no-log-init --uid 10001 --no-create-home --home-dir /nonexistent app
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
# becomes the server (exec), so `docker stop`'s SIGTERM reaches the manager, which drains.
CMD ["python", "-m", "launchers"]
