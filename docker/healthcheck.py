"""Healthchecks of the compose services: `web` (default), `notary-server`, `notary-signer`.

web: /api/v1/systeminfo answers over HTTPS verified with the portal CA. notary-server: its /_notary_server/health
answers 200 over TLS verified with the portal CA (which it does only while its database and signer answer).
notary-signer: its gRPC health service reports SERVING to a client with the notary certificate (mutual TLS).
"""

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


def web() -> str | None:
    """None when the portal answers on its own port, else why not."""
    tls = settings.SECURE_PROXY_SSL_HEADER is None
    url = f"{'https' if tls else 'http'}://127.0.0.1:{settings.PORT}/api/v1/systeminfo"
    context = ssl.create_default_context(cafile=str(pki_paths().ca_cert)) if tls else None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def notary_server() -> str | None:
    """None when notary-server answers its health page, else why not."""
    from registries.notary_health import server_health

    return server_health(settings.NOTARY_LISTEN, str(pki_paths().ca_cert))


def notary_signer() -> str | None:
    """None when notary-signer's gRPC health service reports SERVING, else why not."""
    from registries.notary import signer_client
    from registries.notary_health import signer_health

    return signer_health(signer_client(pki_paths()))


CHECKS = {"web": web, "notary-server": notary_server, "notary-signer": notary_signer}


def main(argv: list[str]) -> int:
    """Exit 0 when the named service is healthy, 1 (with the reason on stderr) when it is not, 2 on bad usage."""
    name = argv[1] if len(argv) > 1 else "web"
    if name not in CHECKS or len(argv) > 2:
        print(f"usage: {argv[0]} [{'|'.join(CHECKS)}]", file=sys.stderr)
        return 2
    problem = CHECKS[name]()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
