"""Healthcheck of the web container: /api/v1/systeminfo answers, over HTTPS verified with the portal CA."""

import os
import ssl
import sys
import urllib.request
from pathlib import Path

# Run as `python docker/healthcheck.py`: the portal's packages sit one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.conf import settings

from portal.core.certificates import pki_paths


def main() -> int:
    """Exit 0 when the portal answers on its own port, 1 (with the reason) when it does not."""
    tls = settings.SECURE_PROXY_SSL_HEADER is None
    url = f"{'https' if tls else 'http'}://127.0.0.1:{settings.PORT}/api/v1/systeminfo"
    context = ssl.create_default_context(cafile=str(pki_paths().ca_cert)) if tls else None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
