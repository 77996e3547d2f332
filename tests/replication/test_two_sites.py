"""Replication between two live Wharf sites: this test process is the source site (its integrated registry in
token mode), and a second Wharf started as `make run` starts it (its own data directory, SQLite database, CA,
registry, worker and beat) is the endpoint.

The endpoint's certificate is issued by its own CA, which this site does not know: with Verify Remote Cert off,
saving the endpoint shows the certificate (UntrustedCertificate, what the trust dialog displays) and works once
it is pinned. The run creates the destination project through the remote's REST API and pushes through its
/v2/ front door with bearer tokens from its token service, as `docker push` would; the remote then lists the
repository from its own registry's events.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from portal.core import trust
from portal.core.audit import Actor
from portal.core.errors import Invalid
from portal.core.jobs import run_job
from portal.core.models import JobState, User
from portal.core.trust import UntrustedCertificate
from projects.models import Project
from registries.client import RegistryClient
from registries.client_auth import ChallengeAuth, Login
from registries.models import Repository, Tag
from replication import services
from replication.models import EndpointKind, Execution
from tests.integration.images import push_image
from tests.integration.launcher_helpers import Launcher
from tests.integration.registry import Registry, point_portal_at, start_registry

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "Remote-Adm1n-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def remote_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """The second Wharf, with its administrator's password known."""
    launcher = Launcher.start(tmp_path_factory.mktemp("remote-site"), WHARF_ADMIN_PASSWORD=PASSWORD)
    try:
        launcher.wait_until_serving(timeout=90)
        yield launcher
    finally:
        launcher.kill()


@pytest.fixture(scope="module")
def source_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = start_registry(tmp_path_factory.mktemp("source"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def wired(settings: Any, source_registry: Registry) -> Registry:
    settings.REPLICATION_CONCURRENCY = 2
    return point_portal_at(settings, source_registry)


def remote_api(site: Launcher, path: str) -> requests.Response:
    return site.get(f"/api/v1/{path}", auth=("admin", PASSWORD))


def test_a_rule_to_another_wharf_creates_the_project_there_and_copies_through_its_front_door(
    wired: Registry, remote_site: Launcher, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    web = Project.objects.create(name="web")
    image = push_image(wired.url, "web/app", ["1.0", "latest"], layer_bytes=64 * 1024)
    row = Repository.objects.create(project=web, name="web/app")
    for tag in ("1.0", "latest"):
        Tag.objects.create(repository=row, name=tag, digest=image.digest, size=image.size)

    # Verify Remote Cert on: the unknown certificate is an error that says what to do.
    with pytest.raises(Invalid, match="turn off Verify Remote Cert"):
        services.create_endpoint(admin, "dr-site", remote_site.url, EndpointKind.WHARF, username="admin",
                                 password=PASSWORD)  # fmt: skip
    # Off: the certificate is shown (the trust dialog's details) and pinned once accepted, never skipped.
    with pytest.raises(UntrustedCertificate) as shown:
        services.create_endpoint(admin, "dr-site", remote_site.url, EndpointKind.WHARF, username="admin",
                                 password=PASSWORD, verify_remote_cert=False)  # fmt: skip
    assert shown.value.certificate["sha256"]
    trust.trust(admin, shown.value.address, shown.value.certificate["pem"])
    probe = services.test_connection(admin, remote_site.url, EndpointKind.WHARF, username="admin", password=PASSWORD,
                                     verify_remote_cert=False)  # fmt: skip
    assert probe.api == "wharf" and probe.can_create_projects is True, probe
    assert "Management Portal administrator there" in probe.message
    endpoint = services.create_endpoint(admin, "dr-site", remote_site.url, EndpointKind.WHARF, username="admin",
                                        password=PASSWORD, verify_remote_cert=False)  # fmt: skip
    assert remote_api(remote_site, "projects/dr-web").status_code == 404

    rule = services.create_rule(admin, "to-dr", web, endpoint, destination_project="dr-web", enabled=True)
    execution = Execution.objects.get(rule=rule)
    run_job(execution.job_id)
    execution.job.refresh_from_db()

    assert execution.job.state == JobState.SUCCEEDED, execution.job.log
    assert "created project 'dr-web' on dr-site" in execution.job.log
    assert remote_api(remote_site, "projects/dr-web").status_code == 200
    there = RegistryClient(remote_site.url, ChallengeAuth(Login("admin", PASSWORD)))
    assert there.head_manifest("dr-web/app", "1.0").digest == image.digest
    assert there.head_manifest("dr-web/app", "latest").digest == image.digest
    # The remote site recorded the push from its registry's events, as for any docker push.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = remote_api(remote_site, "projects/dr-web/repositories")
        if listed.status_code == 200 and "dr-web/app" in listed.text:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the remote site does not list dr-web/app: {listed.status_code} {listed.text[:300]}")

    again = services.run_rule(admin, rule)
    run_job(again.job_id)
    again.job.refresh_from_db()
    assert again.job.state == JobState.SUCCEEDED, again.job.log
    task = again.tasks.get()
    assert (task.tags_skipped, task.bytes_copied, task.blobs_copied) == (2, 0, 0)


def test_test_connection_to_a_wharf_says_when_the_password_is_wrong(
    wired: Registry, remote_site: Launcher, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    with pytest.raises(UntrustedCertificate) as shown:
        services.test_connection(admin, remote_site.url, EndpointKind.WHARF, username="admin", password="x",
                                 verify_remote_cert=False)  # fmt: skip
    trust.trust(admin, shown.value.address, shown.value.certificate["pem"])
    with pytest.raises(Invalid, match="refused the login of 'admin': check the user name and password"):
        services.test_connection(admin, remote_site.url, EndpointKind.WHARF, username="admin", password="wrong",
                                 verify_remote_cert=False)  # fmt: skip
