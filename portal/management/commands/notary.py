"""`manage.py notary config|server|signer`: notary run on its own (docker-compose.yml's notary services).

`config` (the compose stack's init step, after bootstrap) creates notary's tables and writes both configs under
WHARF_DATA_DIR/notary; `server` and `signer` then replace themselves with the notary binary on its config, with the
signer's key passphrase in its environment; `server` first waits for the signer to serve (see
registries.notary_health.wait_for_signer). `make run` starts the same commands on the same configs as children.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.core.certificates import pki_paths
from registries import notary
from registries.notary_health import start_server_after_signer

# How long `server` waits for the signer to serve before it starts notary-server all the same.
SIGNER_WAIT_SECONDS = 60


class Command(BaseCommand):
    """Write notary's configs, or run notary-server / notary-signer on them."""

    help = "config: create notary's schema and write its configs; server / signer: run that notary process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["config", "server", "signer"])

    def handle(self, *args: object, action: str, **options: object) -> None:
        try:
            if action == "config":
                pki = pki_paths()
                if not pki.notary_cert.exists():
                    raise CommandError(f"no notary certificate yet ({pki.notary_cert}): run `manage.py bootstrap`")
                try:
                    notary.database_url()
                except notary.NotaryUnavailable as exc:
                    # A stack without PostgreSQL has no notary; init still prepares the rest of the portal.
                    self.stderr.write(f"notary: not configured - {exc}")
                    return
                configs = notary.write_configs(pki, realm=settings.REGISTRY_TOKEN_REALM)
                self.stdout.write(f"notary configs: {configs.server}, {configs.signer}")
                self.stdout.write(f"  server: {settings.NOTARY_LISTEN} (clients: {settings.NOTARY_URL})")
                self.stdout.write(f"  signer: {settings.NOTARY_SIGNER_ADDRESS}")
                self.stdout.write(f"  token realm: {settings.REGISTRY_TOKEN_REALM}")
                return
            argv, env = notary.command(action)
        except notary.NotaryUnavailable as exc:
            raise CommandError(str(exc)) from exc
        if action == "server":
            start_server_after_signer(notary.signer_client(pki_paths()), SIGNER_WAIT_SECONDS, argv)
        os.execve(argv[0], argv, {**os.environ, **env})
