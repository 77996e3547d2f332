"""`make run` on the embedded defaults (a SQLite portal) runs notary on the machine's own PostgreSQL, and the trust
data a developer signed is still there after the launcher restarts."""

from __future__ import annotations

import contextlib
import getpass
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg2
import pytest
import requests
import yaml

from tests.integration.launcher_helpers import PYTHON, ROOT, Launcher, embedded_env, free_port
from tests.integration.notary import notary_ok
from tests.integration.test_launcher import STOP_WITHIN, stop_and_check_everything_exits, wait_component

pytestmark = pytest.mark.integration

ADMIN = ("admin", "Embedded-notary-2026")
DEVELOPER = ("signer", "Signs-tags-2026")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The launcher's data directory; the notary database it named there is dropped afterwards."""
    from django.db import connection

    from tests.integration.worker import database_url

    folder = tmp_path / "data"
    yield folder
    named = folder / "notary_database"
    if named.exists():
        server = database_url(connection.settings_dict).rsplit("/", 1)[0]
        with contextlib.closing(psycopg2.connect(f"{server}/postgres")) as admin:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{named.read_text().strip()}" WITH (FORCE)')


@pytest.fixture
def launchers() -> Iterator[list[Launcher]]:
    """Launchers the test started; any still running at the end is killed with everything it started."""
    started: list[Launcher] = []
    yield started
    for launcher in started:
        if launcher.process.poll() is None:
            launcher.kill()


def start(launchers: list[Launcher], data_dir: Path, notary_ports: dict[str, str]) -> Launcher:
    """`manage.py run` on the embedded defaults with notary on (the test helpers turn it off), on ports of its own."""
    launcher = Launcher.start(
        data_dir,
        WHARF_ADMIN_PASSWORD=ADMIN[1],
        WHARF_REGISTRY_URL=f"http://127.0.0.1:{free_port()}",
        WHARF_NOTARY_ENABLED="true",
        **notary_ports,
    )
    launchers.append(launcher)
    launcher.wait_until_serving()
    for part in ("notary-signer", "notary-server"):
        wait_component(launcher, part, "running", 0)
    return launcher


def developer_notary(launcher: Launcher, notary_url: str, trust_dir: Path, *args: str) -> str:
    """The notary CLI against the launcher's notary as the developer, trusting the launcher's CA."""
    return notary_ok(notary_url, launcher.ca, trust_dir, DEVELOPER, *args)


def compose_healthcheck(service: str, data_dir: Path, notary_ports: dict[str, str]) -> subprocess.CompletedProcess:
    """The service's healthcheck command from docker-compose.yml, run here on the launcher's data and addresses."""
    test = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test
    env = embedded_env(data_dir, **notary_ports)
    return subprocess.run([str(PYTHON), *test[2:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_sqlite_portal_keeps_notary_trust_data_in_local_postgres_across_restarts(
    data_dir: Path, launchers: list[Launcher], tmp_path: Path
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    ports = {"WHARF_NOTARY_LISTEN": listen, "WHARF_NOTARY_SIGNER_ADDRESS": f"127.0.0.1:{free_port()}"}
    notary_url = f"https://{listen}"
    launcher = start(launchers, data_dir, ports)
    assert f"notary (content trust): {notary_url} (DOCKER_CONTENT_TRUST_SERVER)" in launcher.output, launcher.output
    info = launcher.get("/api/v1/systeminfo").json()
    assert (info["notary_url"], info["notary_state"], info["with_notary"]) == (notary_url, "running", True), info

    # No WHARF_NOTARY_DATABASE_URL: notary's storage is this machine's PostgreSQL, logged in as the user running the
    # portal, over Debian's socket when there is one, in the database named for this data directory.
    name = (data_dir / "notary_database").read_text().strip()
    assert name.startswith("wharf_notary_"), name
    for role in ("server", "signer"):
        storage = json.loads((data_dir / "notary" / f"{role}.json").read_text())["storage"]
        url = urlsplit(storage["db_url"])
        socket_dir = Path("/var/run/postgresql")
        host = dict(parse_qsl(url.query)).get("host") or url.hostname
        expected = str(socket_dir) if (socket_dir / ".s.PGSQL.5432").exists() else "127.0.0.1"
        found = (storage["backend"], url.username, host, url.path)
        assert found == ("postgres", getpass.getuser(), expected, f"/{name}"), storage["db_url"]

    created = launcher.post("/api/v1/users", auth=ADMIN, json={"username": DEVELOPER[0], "password": DEVELOPER[1]})
    assert created.status_code == 201, created.text
    member = {"user": DEVELOPER[0], "role": "developer"}
    assert launcher.post("/api/v1/projects/default-project/members", auth=ADMIN, json=member).status_code == 201

    gun = f"127.0.0.1:{launcher.port}/default-project/app"
    target = tmp_path / "manifest.json"
    target.write_text('{"schemaVersion": 2}')
    trust_dir = tmp_path / "trust"
    developer_notary(launcher, notary_url, trust_dir, "init", gun)
    developer_notary(launcher, notary_url, trust_dir, "add", gun, "1.0", str(target))
    developer_notary(launcher, notary_url, trust_dir, "publish", gun)
    # docker-compose.yml's healthchecks of the two services pass against them, and fail once they are gone.
    for service in ("notary-signer", "notary-server"):
        check = compose_healthcheck(service, data_dir, ports)
        assert check.returncode == 0, f"{service} healthcheck failed: {check.stderr}"
    stop_and_check_everything_exits(launcher)
    for service in ("notary-signer", "notary-server"):
        check = compose_healthcheck(service, data_dir, ports)
        assert check.returncode == 1 and "Connection refused" in check.stderr, (service, check.stderr)

    again = start(launchers, data_dir, ports)
    assert (data_dir / "notary_database").read_text().strip() == name, "a restart must keep notary's database"
    # A client that never saw the repository reads the signed tag from the restarted notary; the developer signs
    # another one with the timestamp key the signer kept.
    assert "1.0" in developer_notary(again, notary_url, tmp_path / "fresh", "list", gun)
    developer_notary(again, notary_url, trust_dir, "add", gun, "2.0", str(target))
    developer_notary(again, notary_url, trust_dir, "publish", gun)
    listing = developer_notary(again, notary_url, tmp_path / "fresh", "list", gun)
    assert "1.0" in listing and "2.0" in listing, listing
    health = requests.get(f"{notary_url}/_notary_server/health", verify=again.ca, timeout=10)
    assert health.status_code == 200, health.text
    code, _ = again.interrupt(timeout=STOP_WITHIN)
    assert code == 0, again.output[-3000:]


def test_notary_turned_off_says_how_to_turn_it_on(data_dir: Path, launchers: list[Launcher]) -> None:
    launcher = Launcher.start(data_dir, WHARF_REGISTRY_URL=f"http://127.0.0.1:{free_port()}")
    launchers.append(launcher)
    info = launcher.wait_until_serving().json()
    assert (info["notary_state"], info["with_notary"], info["notary_url"]) == ("off", False, "https://127.0.0.1:4443")
    assert "notary: NOT RUNNING - turned off (WHARF_NOTARY_ENABLED=false)" in launcher.output, launcher.output
    # Nothing of notary's is made: no config, no database named in the machine's PostgreSQL.
    assert not (data_dir / "notary" / "server.json").exists() and not (data_dir / "notary_database").exists()
    code, _ = launcher.interrupt(timeout=STOP_WITHIN)
    assert code == 0, launcher.output[-3000:]
