"""Real notary (Debian's notary-server and notary-signer 0.7) as the launcher starts it, for the tests that sign."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from django.test import override_settings

from portal.core.certificates import ensure_pki
from portal.core.components import RUNNING
from portal.launcher import notary_children
from portal.supervisor import Supervisor
from tests.integration.slapd import free_port
from tests.integration.worker import database_url

# Notary's passphrases for the keys a client makes (root, targets, snapshot), as a CI job would set them.
PASSPHRASES = {f"NOTARY_{role}_PASSPHRASE": "wharf-test-passphrase" for role in ("ROOT", "TARGETS", "SNAPSHOT")}


@dataclass
class Notary:
    """notary-signer and notary-server under the launcher's supervisor, restartable on the same storage."""

    url: str
    children: list
    workdir: Path
    supervisor: Supervisor | None = None

    def start(self) -> None:
        self.supervisor = Supervisor(self.children, status_path=self.workdir / "components.json")
        self.supervisor.start_all()
        deadline = time.monotonic() + 30
        while not all(entry.state == RUNNING for entry in self.supervisor.entries):
            assert self.supervisor.step() is None
            states = {entry.child.name: entry.detail for entry in self.supervisor.entries}
            assert time.monotonic() < deadline, f"notary did not come up: {states}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None


@contextlib.contextmanager
def running_notary(portal_host: str, workdir: Path, listen: str = "") -> Iterator[Notary]:
    """Notary as `make run` starts it for the portal at `portal_host` (its token realm), on a database of its own
    beside the test database (dropped afterwards), listening on `listen` (default: a free loopback port); the
    settings point at it while it runs."""
    from django.db import connection

    listen = listen or f"127.0.0.1:{free_port()}"
    name = f"{connection.settings_dict['NAME']}_notary_{uuid.uuid4().hex[:8]}"
    db_url = database_url(connection.settings_dict).rsplit("/", 1)[0] + f"/{name}"
    knobs = {
        "NOTARY_LISTEN": listen,
        "NOTARY_URL": f"https://{listen}",
        "NOTARY_INTERNAL_URL": f"https://{listen}",
        "NOTARY_SIGNER_ADDRESS": f"127.0.0.1:{free_port()}",
        "NOTARY_DATABASE_URL": db_url,
        "NOTARY_DIR": workdir / "config",
    }
    with override_settings(**knobs):
        pki = ensure_pki()
        host, port = portal_host.rsplit(":", 1)
        server = Notary(f"https://{listen}", notary_children(pki, host, int(port)), workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()
            with contextlib.closing(psycopg2.connect(db_url.rsplit("/", 1)[0] + "/postgres")) as admin:
                admin.autocommit = True
                with admin.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def notary_cli(
    url: str, ca: str | Path, trust_dir: Path, login: tuple[str, str], *args: str
) -> subprocess.CompletedProcess:
    """The notary CLI against the server at `url` (trusting the CA), logging in as (user, secret) through the
    portal's token service, with the test passphrases for the keys it makes; whatever its exit code."""
    auth = base64.b64encode(":".join(login).encode()).decode()
    return subprocess.run(
        ["notary", "-s", url, "-d", str(trust_dir), "--tlscacert", str(ca), *args],
        env={**os.environ, **PASSPHRASES, "NOTARY_AUTH": auth},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def notary_ok(url: str, ca: str | Path, trust_dir: Path, login: tuple[str, str], *args: str) -> str:
    """notary_cli that must succeed; its output."""
    result = notary_cli(url, ca, trust_dir, login, *args)
    assert result.returncode == 0, f"notary {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
