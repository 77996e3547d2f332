"""notary-server as the launcher starts it waits for its signer: started first, it does not serve until the signer
does, and then signs at once (a server that dialed an absent signer answers 500 until gRPC's backoff ends)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.test import override_settings

from portal.core.certificates import ensure_pki
from portal.launcher import Child, notary_children
from tests.integration.launcher_helpers import command_line
from tests.integration.notary import Notary
from tests.integration.slapd import free_port
from tests.integration.test_notary import ok, people, portal, run_notary  # noqa: F401 (fixtures)
from tests.integration.test_registry_push_pull import Portal
from tests.integration.worker import database_url

pytestmark = pytest.mark.integration


def answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
        return True
    return False


@pytest.fixture
def notary_parts(portal: Portal, tmp_path: Path) -> Iterator[tuple[dict[str, Child], str]]:  # noqa: F811
    """The launcher's notary children on a database of their own (dropped afterwards), not started; and the
    server's address. Whatever the test starts of them is killed at the end."""
    from django.db import connection

    listen = f"127.0.0.1:{free_port()}"
    name = f"{connection.settings_dict['NAME']}_notary_start_{uuid.uuid4().hex[:8]}"
    server_url = database_url(connection.settings_dict).rsplit("/", 1)[0]
    knobs = {
        "NOTARY_LISTEN": listen,
        "NOTARY_SIGNER_ADDRESS": f"127.0.0.1:{free_port()}",
        "NOTARY_DATABASE_URL": f"{server_url}/{name}",
        "NOTARY_DIR": tmp_path / "config",
    }
    with override_settings(**knobs):
        host, port = portal.host.rsplit(":", 1)
        children = {child.name: child for child in notary_children(ensure_pki(), host, int(port))}
    try:
        yield children, listen
    finally:
        for child in children.values():
            if child.process is not None and child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=10)
        with contextlib.closing(psycopg2.connect(f"{server_url}/postgres")) as admin:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def launch(child: Child) -> subprocess.Popen:
    """Start a child as the supervisor does (its own session, its extra environment)."""
    child.process = subprocess.Popen(child.argv, env={**os.environ, **child.env}, start_new_session=True)
    return child.process


def test_server_started_before_its_signer_waits_for_it_and_then_signs_at_once(
    notary_parts: tuple[dict[str, Child], str],
    portal: Portal,  # noqa: F811
    people: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    children, listen = notary_parts
    server = launch(children["notary-server"])
    time.sleep(3)
    assert server.poll() is None, "the server gave up instead of waiting for its signer"
    assert not answers(listen), "notary-server serves before its signer does"
    assert "registries.notary_health" in command_line(server.pid), command_line(server.pid)

    launch(children["notary-signer"])
    deadline = time.monotonic() + 30
    while not answers(listen):
        assert server.poll() is None, f"the server exited with {server.returncode}"
        assert time.monotonic() < deadline, "notary-server did not start once its signer served"
        time.sleep(0.1)
    # The waiting process became notary-server itself: the supervisor keeps watching the same pid.
    assert command_line(server.pid).startswith("/usr/bin/notary-server -config"), command_line(server.pid)

    # Signing right away works: the server's first dial reached the signer (it makes the timestamp key there).
    gun = f"{portal.host}/alpha/app"
    target = tmp_path / "manifest.json"
    target.write_text('{"schemaVersion": 2}')
    notary = Notary(f"https://{listen}", [], tmp_path)
    for command in (("init", gun), ("add", gun, "1.0", str(target)), ("publish", gun)):
        ok(run_notary(notary, people, "dev", tmp_path / "dev", *command))
