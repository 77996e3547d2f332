#!/bin/sh
# Entry point of the Wharf image. `init` is the one-shot step of docker-compose.yml: apply the
# migrations, run the first-start setup (portal CA and HTTPS certificate in /data/pki, the admin
# user, default-project, the beat schedule) and write the registry service's config and CA bundle
# (/data/registry/config.yml, ca-bundle.crt) and notary's (/data/notary); all are safe to repeat at every `docker compose up`.
# Anything else (gunicorn, celery, manage.py ...) runs as given.
set -eu
# /data holds the portal's keys and secrets: whatever web, worker, beat and init write there is the owner's only.
umask 077
if [ "${1:-}" = init ]; then
    python manage.py migrate --noinput
    python manage.py bootstrap
    python manage.py registry_config
    # notary's tables (in PostgreSQL) and the configs of the notary-server and notary-signer services.
    exec python manage.py notary config
fi
exec "$@"
