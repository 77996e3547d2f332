"""`manage.py registry_config`: write the config of a registry that runs on its own (docker-compose.yml).

The `init` step of the compose stack runs it after `bootstrap`; the `registry` service then runs
`registry serve <WHARF_REGISTRY_CONFIG_PATH>` with SSL_CERT_FILE=<the trust bundle beside it>.
`make run` writes the same files through the same function when it starts its registry child.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cryptography import x509
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.core.certificates import PkiPaths, pki_paths
from portal.launcher import write_registry_config


def certificate_names(pki: PkiPaths) -> set[str]:
    """The DNS names and IP addresses the portal's HTTPS certificate covers."""
    certificate = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


class Command(BaseCommand):
    """Render the registry config from WHARF_REGISTRY_* settings and write it with its trust bundle."""

    help = (
        "Write the registry config (WHARF_REGISTRY_CONFIG_PATH) and the CA bundle beside it for a registry "
        "run on its own: listens on WHARF_REGISTRY_LISTEN, notifies WHARF_REGISTRY_NOTIFY_URL."
    )

    def handle(self, *args: object, **options: object) -> None:
        pki = pki_paths()
        missing = [str(path) for path in (pki.ca_cert, pki.token_cert, pki.server_cert) if not path.exists()]
        if missing:
            raise CommandError(f"no portal PKI yet ({', '.join(missing)}): run `manage.py bootstrap` first")
        config_path, bundle = write_registry_config(
            pki,
            listen=settings.REGISTRY_LISTEN,
            realm=settings.REGISTRY_TOKEN_REALM,
            notify_url=settings.REGISTRY_NOTIFY_URL,
        )
        self.stdout.write(f"registry config: {config_path}")
        self.stdout.write(f"  listen: {settings.REGISTRY_LISTEN}")
        self.stdout.write(f"  storage: {settings.REGISTRY_STORAGE_DIR}")
        self.stdout.write(f"  notifications: {settings.REGISTRY_NOTIFY_URL}")
        self.stdout.write(f"  token realm: {settings.REGISTRY_TOKEN_REALM}")
        self.stdout.write(f"  trust bundle (SSL_CERT_FILE): {bundle}")
        notify = urlsplit(settings.REGISTRY_NOTIFY_URL)
        names = certificate_names(pki)
        if notify.scheme == "https" and not any(_same_host(notify.hostname or "", name) for name in names):
            # The registry verifies the portal's certificate: its events would never arrive.
            self.stderr.write(
                f"warning: the portal's HTTPS certificate does not name {notify.hostname!r} of "
                f"WHARF_REGISTRY_NOTIFY_URL (it names {', '.join(sorted(names))}); add it to WHARF_HOSTNAMES "
                f"and delete {pki.server_cert.name} and {pki.server_key.name} so the next start makes a new one"
            )
