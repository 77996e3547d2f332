"""Real notary (Debian's notary-server and notary-signer 0.7) as the launcher configures it, behind the portal's token
service: a developer signs with the `notary` CLI, a viewer reads but cannot sign, and the trust data outlives a
restart of both processes (PostgreSQL storage)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from portal.core.audit import Actor
from portal.core.certificates import pki_paths
from portal.core.models import User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD
from tests.integration.notary import Notary, notary_cli, running_notary
from tests.integration.test_registry_push_pull import Portal, live_portal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The live portal whose token service notary asks."""
    with live_portal(tmp_path_factory.mktemp("portal")) as server:
        yield server


@pytest.fixture(scope="module")
def notary(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notary]:
    """Notary as `make run` starts it (see tests/integration/notary.py)."""
    with running_notary(portal.host, tmp_path_factory.mktemp("notary")) as server:
        yield server


@pytest.fixture
def people(transactional_db: None) -> dict[str, str]:
    """A developer and a viewer of private project alpha, and an outsider, each with an API token as the secret
    (the live portal hashes passwords with the production hasher, the test process with a fast one)."""
    alpha = Project.objects.create(name="alpha")
    secrets = {}
    for name, role in (("dev", Role.DEVELOPER), ("viewer", Role.VIEWER), ("outsider", None)):
        user = User.objects.create_user(name, password=PASSWORD)
        if role:
            Membership.objects.create(project=alpha, user=user, role=role)
        secrets[name] = create_token(Actor(user), "notary")[1]
    return secrets


def run_notary(
    server: Notary, people: dict[str, str], user: str, trust_dir: Path, *args: str
) -> subprocess.CompletedProcess:
    """The notary CLI against the server, logging in as the user through the portal's token service."""
    return notary_cli(server.url, pki_paths().ca_cert, trust_dir, (user, people[user]), *args)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args[-3:]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_developer_signs_viewer_reads_and_trust_data_survives_a_restart(
    notary: Notary, portal: Portal, people: dict[str, str], tmp_path: Path
) -> None:
    # docker names trust data after the registry host it pushes to: the portal's own address.
    gun = f"{portal.host}/alpha/app"
    target = tmp_path / "manifest.json"
    target.write_text('{"schemaVersion": 2}')
    dev_dir = tmp_path / "dev"
    ok(run_notary(notary, people, "dev", dev_dir, "init", gun))
    ok(run_notary(notary, people, "dev", dev_dir, "add", gun, "1.0", str(target)))
    ok(run_notary(notary, people, "dev", dev_dir, "publish", gun))

    listing = ok(run_notary(notary, people, "viewer", tmp_path / "viewer", "list", gun))
    assert "1.0" in listing, listing

    # A viewer may read but not sign: starting a collection of their own (init fetches the server's timestamp key,
    # which needs push) is refused by the token's grant, and so is publishing.
    viewer_gun = f"{portal.host}/alpha/viewer-app"
    for command in (("init", viewer_gun), ("publish", viewer_gun)):
        refused = run_notary(notary, people, "viewer", tmp_path / "viewer", *command)
        assert refused.returncode != 0, refused.stdout
        assert "401" in refused.stdout + refused.stderr, (command, refused.stdout, refused.stderr)
    # Nobody outside the project reads alpha's trust data.
    outsider = run_notary(notary, people, "outsider", tmp_path / "outsider", "list", gun)
    assert outsider.returncode != 0 and "1.0" not in outsider.stdout, outsider.stdout

    notary.stop()
    notary.start()
    # After the restart the server still has the trust data, and the signer still has the timestamp key it made:
    # a fresh client lists the target, and the developer publishes another.
    assert "1.0" in ok(run_notary(notary, people, "viewer", tmp_path / "viewer-again", "list", gun))
    ok(run_notary(notary, people, "dev", dev_dir, "add", gun, "2.0", str(target)))
    ok(run_notary(notary, people, "dev", dev_dir, "publish", gun))
    listing = ok(run_notary(notary, people, "viewer", tmp_path / "viewer-again", "list", gun))
    assert "1.0" in listing and "2.0" in listing, listing


def test_notary_asks_the_portal_for_tokens_of_its_own_service(notary: Notary) -> None:
    import requests

    response = requests.get(
        f"{notary.url}/v2/127.0.0.1/alpha/app/_trust/tuf/root.json", verify=str(pki_paths().ca_cert), timeout=10
    )
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert f'service="{settings.NOTARY_SERVICE}"' in challenge and "/service/token" in challenge, challenge
