"""`manage.py run`: migrate, bootstrap, print how to log in, then run web, worker, beat, the registry and notary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from portal.bootstrap import bootstrap
from portal.core.audit import Actor, record
from portal.core.certificates import ca_info, pki_paths
from portal.core.components import NOTARY
from portal.launcher import children, notary_children, registry_child, restrict_data_dir
from portal.supervisor import supervise
from registries.notary import NotaryUnavailable


def audit_restart(component: str, reason: str, restarts: int, delay: float) -> None:
    """Record the launcher's restart of a dead part of the portal as the system's audit event."""
    try:
        record(Actor.system(), "restart", "component", component, reason=reason, restarts=restarts, delay=delay)
    finally:
        # Runs in the supervisor's audit thread; never keep a connection open between restarts.
        connections.close_all()


class Command(BaseCommand):
    """Start the whole portal on the embedded defaults (or whatever WHARF_* variables say)."""

    help = "Migrate, bootstrap and start the web server (HTTPS), Celery worker, beat and the registry."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=settings.BIND_ADDRESS, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.PORT, help="HTTPS port (default 8282)")

    def handle(self, *args: object, bind: str, port: int, **options: object) -> None:
        # Owner-only data: everything the launcher and its children create from here on, and what is there.
        os.umask(0o077)
        restrict_data_dir(settings.DATA_DIR, skip=(Path(settings.REGISTRY_STORAGE_DIR) / "docker",))
        call_command("migrate", interactive=False, verbosity=0)
        result = bootstrap(example_users=settings.EXAMPLE_USERS)
        ca = ca_info()
        host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
        out = self.stdout
        out.write(f"\nWharf {settings.VERSION} is starting at https://{host}:{port}/")
        out.write(f"  data directory: {settings.DATA_DIR}")
        out.write(f"  CA certificate: https://{host}:{port}/api/v1/systeminfo/ca")
        out.write(f"  CA SHA-1:   {ca.sha1}")
        out.write(f"  CA SHA-256: {ca.sha256}")
        if result.admin_password:
            out.write(f"  admin user: admin / {result.admin_password}   (shown once; change it in your profile)")
        else:
            out.write("  admin user: admin (password as set before, or WHARF_ADMIN_PASSWORD)")
        for username, password in result.example_passwords.items():
            out.write(f"  example user: {username} / {password}")
        procs = children(pki_paths(), bind, port)
        for child in procs:
            if child.name == "web":
                # Web counts as running once its port accepts connections (see portal/supervisor.py).
                child.probe = (host, port)
        # The realm the registry names is rewritten by the /v2/ proxy; this one serves direct diagnostics.
        registry = registry_child(pki_paths(), (settings.EXTRA_HOSTNAMES or [host])[0], port)
        if registry is None:
            out.write(
                f"  registry: NOT RUNNING - {settings.REGISTRY_BINARY} is not installed "
                "(apt-get install docker-registry); docker push/pull will fail"
            )
        else:
            procs.append(registry)
            out.write(f"  registry: {settings.REGISTRY_URL} (behind https://{host}:{port}/v2/)")
        left_off: dict[str, str] = {}
        try:
            procs.extend(notary_children(pki_paths(), (settings.EXTRA_HOSTNAMES or [host])[0], port))
            out.write(f"  notary (content trust): {settings.NOTARY_URL} (DOCKER_CONTENT_TRUST_SERVER)")
        except NotaryUnavailable as exc:
            out.write(f"  notary: NOT RUNNING - {exc}; content trust cannot sign")
            # Administration > Configuration shows the reason (see portal.core.components).
            left_off = dict.fromkeys(NOTARY, str(exc))
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        connections.close_all()
        sys.exit(supervise(procs, audit_restart, left_off))
