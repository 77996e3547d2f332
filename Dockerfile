# syntax=docker/dockerfile:1
# The Wharf image: one image for the web, worker, beat and init services of docker-compose.yml
# (the registry service runs the upstream registry:2 image with the config init writes).
#
#   docker build -t wharf .
#
# The default command serves the portal with gunicorn over HTTPS on port 8282, using the
# certificate the portal's own CA issued in /data/pki (created by `docker/entrypoint.sh init`,
# i.e. `manage.py migrate` + `manage.py bootstrap`). Set WHARF_BEHIND_PROXY=true to serve plain
# HTTP on the same port behind a TLS-terminating proxy instead (see docker/gunicorn.conf.py).
# All state lives in the /data volume (PKI, secret key, encryption key); the database is PostgreSQL.

# --- build: compile python-ldap and psycopg2, fetch the front-end packages --------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev libpq-dev nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- runtime: shared libraries only, no compiler, no Node.js -----------------------------------
# Debian's notary package brings notary-server and notary-signer (0.7) for the compose notary services.
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 libpq5 notary \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin wharf \
    && mkdir /data /var/lib/registry \
    && chown wharf:wharf /data /var/lib/registry \
    && chmod 0700 /data
# The distribution registry's binary (statically linked Go), for garbage collection in the worker:
# `registry garbage-collect --delete-untagged /data/registry/config.yml` on the registry-data volume
# mounted at /var/lib/registry. It runs beside the live `registry` service, which the portal keeps
# read-only for the run through its maintenance flag (pushes refused, pulls continue), so no restart.
# /var/lib/registry is the wharf user's, so the registry-data volume starts owned by it (the init
# service mounts it first) and the registry service, running as that user, and GC can both write it.
COPY --from=registry:2 /bin/registry /usr/local/bin/registry
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY . .
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    WHARF_DATA_DIR=/data
# A named volume mounted here starts with this folder's owner and mode (0700: the database and keys are
# the wharf user's alone), so the non-root user can write it.
VOLUME /data
USER wharf
EXPOSE 8282
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["gunicorn", "portal.wsgi:application", "--config", "docker/gunicorn.conf.py"]
