# syntax=docker/dockerfile:1
# The portal's own images, built from the repository root (compose.yaml builds both):
#   docker build --target web    -t delivery-portal/web .      gunicorn on :8000, /healthz
#   docker build --target worker -t delivery-portal/worker .   manage.py qcluster (Q_CLUSTER_NAME=ingest: reports)
# The base is pinned by digest; refresh it with `docker buildx imagetools inspect python:3.11-slim-bookworm`.
# The tests build with a base made locally (no public registry there): --build-arg PYTHON_IMAGE=<local image>.
# No secret is baked in: SECRET_KEY, DATABASE_URL and the rest come from the container's environment.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# Wheels into a virtualenv, then the static files collected (hashed and compressed for whitenoise).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt /build/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --requirement /build/requirements.txt
WORKDIR /build/portal
COPY . .
# collectstatic only imports the settings: a throwaway key, no database file, nothing kept but the files, made
# readable by everyone (the portal's upload modes, 0600/0700, apply to them too).
RUN SECRET_KEY="$(/opt/venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
       DATABASE_URL=sqlite://:memory: PORTAL_VAR_DIR=/tmp/portal-var STATIC_ROOT=/opt/static \
       /opt/venv/bin/python manage.py collectstatic --no-input -v0 \
    && chmod -R a+rX,go-w /opt/static

# What both images run on: the virtualenv, the code (root-owned: the process cannot rewrite it), a user without
# a login, and the data directory (SQLite when no DATABASE_URL, raw reports when no S3 bucket) as a volume.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="delivery portal"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTAL_VAR_DIR=/var/lib/portal \
    STATIC_ROOT=/opt/static
RUN groupadd --gid 10001 portal \
    && useradd --uid 10001 --gid portal --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin portal \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/portal
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/static /opt/static
WORKDIR /app
COPY . .
USER 10001:10001
VOLUME ["/var/lib/portal"]

# The background worker: django-q2's cluster. Needs the same DATABASE_URL and REDIS_URL as the web image.
FROM runtime AS worker
LABEL org.opencontainers.image.description="delivery portal worker (django-q2 qcluster)"
CMD ["python", "manage.py", "qcluster"]

# The web image (last, so a plain `docker build .` makes it): gunicorn, static files served by whitenoise. No
# control socket: nothing in the container uses it, and the user has no home to put it in.
FROM runtime AS web
LABEL org.opencontainers.image.description="delivery portal web (gunicorn, whitenoise)"
# Workers: one more than the CPUs (portal.gunicorn_conf), or WEB_CONCURRENCY.
ENV PORT=8000
EXPOSE 8000
# /healthz answers 200 when the database does. The Host header is the first of ALLOWED_HOSTS ('*' and
# '.example.com' patterns made concrete) so that Django does not refuse the probe itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('.').replace('*', '') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), headers={'Host': h}), timeout=4)"]
CMD ["sh", "-c", "exec gunicorn -c python:portal.gunicorn_conf --bind 0.0.0.0:${PORT} --no-control-socket portal.wsgi"]
