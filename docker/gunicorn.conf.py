"""gunicorn settings of the web container, from the same WHARF_* variables the portal reads.

By default gunicorn serves HTTPS itself with the certificate the portal's CA issued in
WHARF_DATA_DIR/pki (made by the `init` step), like the appliance and `make run` do: `docker login`
and the registry token service talk to it directly. With WHARF_BEHIND_PROXY=true it serves plain
HTTP instead, for a TLS-terminating proxy in front that sets X-Forwarded-Proto.
"""

import os
import sys
from pathlib import Path

# gunicorn reads this file before it changes into the app's folder: make the portal importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.conf import settings

from portal.core.certificates import pki_paths
from portal.gunicorn_hooks import post_worker_init, ssl_context  # noqa: F401 - server hooks gunicorn reads here
from portal.launcher import WEB_WORKER_CLASS

wsgi_app = "portal.wsgi:application"
bind = [f"{settings.BIND_ADDRESS}:{settings.PORT}"]
workers = settings.WEB_WORKERS
# gthread whose threads never wait for a slow client, as `make run` serves it (see portal/web_worker.py).
worker_class = WEB_WORKER_CLASS
threads = 4
timeout = 60
# Shorter than Docker's 10 s stop timeout, so requests in flight finish before SIGKILL.
graceful_timeout = 8
accesslog = "-"

if settings.SECURE_PROXY_SSL_HEADER is None:
    certfile = str(pki_paths().server_cert)
    keyfile = str(pki_paths().server_key)
