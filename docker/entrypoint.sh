#!/bin/sh
# Entry point of the Wharf image. `init` is the one-shot step of docker-compose.yml: apply the
# migrations and run the first-start setup (portal CA and HTTPS certificate in /data/pki, the admin
# user, default-project, the beat schedule); both are safe to repeat at every `docker compose up`.
# Anything else (gunicorn, celery, manage.py ...) runs as given.
set -eu
if [ "${1:-}" = init ]; then
    python manage.py migrate --noinput
    exec python manage.py bootstrap
fi
exec "$@"
