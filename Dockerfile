# syntax=docker/dockerfile:1
# The production image of weather-backend.
#
#   docker build --build-arg APP_VERSION=0.1.0 -t weather-backend:0.1.0 .
#
# Runs as a non-root user on a read-only root filesystem: only /tmp (and
# BACKUP_DIR, under /tmp by default) must be writable. Kubernetes probes
# /healthz and /readyz, so the image declares no HEALTHCHECK of its own.

# Pinned by tag (Python minor version and Debian release). For fully
# reproducible builds, CI may pin the digest as well: python:3.11-slim-bookworm@sha256:...
FROM python:3.11-slim-bookworm

# pg_dump for `flask db backup` (taken before risky migrations).
# Not version-pinned on purpose (DL3008): Debian replaces a package version on
# every security update and drops the old one from the archive, so an exact pin
# would break rebuilds; the base image tag already fixes the Debian release
# (bookworm: PostgreSQL 15 client; pg_dump must be at least the server's major version).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric UID/GID, so the pod's runAsUser/runAsNonRoot can check it.
# No home directory in the image: HOME is /tmp, the one writable place.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HOME=/tmp \
    PORT=8000 \
    BACKUP_DIR=/tmp/backups

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the pins change, not on
# every code change.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The code, owned by root and so read-only for the app user. Only what runs in
# production: no tests, benchmarks or docs (see .dockerignore as well).
COPY app.py models.py gunicorn.conf.py entrypoint.sh ./
COPY weather/ weather/
COPY safe_migrations/ safe_migrations/
COPY migrations/ migrations/

# Compile once at build time: the root filesystem is read-only at run time
# (PYTHONDONTWRITEBYTECODE), and start-up stays one import plus one query.
# The check fails the build if the migrations or the entrypoint did not make it in.
RUN python -m compileall -q app.py models.py gunicorn.conf.py weather safe_migrations migrations \
    && test -f migrations/env.py && test -d migrations/versions && test -x entrypoint.sh

# The image version, recorded in the applied-migration ledger (APP_VERSION).
ARG APP_VERSION=dev
ENV APP_VERSION=${APP_VERSION}
LABEL org.opencontainers.image.title="weather-backend" \
      org.opencontainers.image.version="${APP_VERSION}"

USER 10001

EXPOSE 8000

# Waits for the database, applies pending migrations under the advisory lock,
# then becomes gunicorn's master (exec, so SIGTERM from the kubelet reaches it).
ENTRYPOINT ["./entrypoint.sh"]
