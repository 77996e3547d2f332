""" "Prevent vulnerable images from running" with real scan data, at provisioning: the image is pushed to the real
registry and scanned in process; the provisioning API (and hosts.images.resolve_image under it) refuses it with the
reason, before any host is asked, until its CVEs are allowlisted or the threshold is raised.

The hosts listen nowhere (a closed loopback port): the policy is asked before a host is chosen, so a refusal never
reaches one, and an allowed request only queues the provisioning job.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hosts.images import INTEGRATED, resolve_image
from hosts.models import Container, ContainerHost, HostState
from portal.core.audit import Actor
from portal.core.errors import Forbidden
from portal.core.jobs import run_job
from portal.core.models import Job, JobState, User
from projects.models import Membership, Project, Role
from registries.models import Tag
from scanning import services
from scanning.models import AllowlistEntry
from tests.conftest import client_for
from tests.integration.registry import Registry
from tests.integration.slapd import free_port
from tests.scanning.image_builder import BuiltImage
from tests.scanning.scanned_images import pushed, scanned

pytestmark = pytest.mark.integration

PORTAL = "wharf.example:8282"
IMAGE = f"{PORTAL}/web/app:1.0"
CONTAINERS = "/api/v1/projects/web/containers"
VULNERABLE = (
    f"{IMAGE} may not run: image has 2 critical and 2 high vulnerabilities (CVE-0000-1006, CVE-0000-1001), "
    "threshold high"
)


@pytest.fixture
def portal_address(settings: Any) -> str:
    """The integrated registry's address as clients name it: the portal's host and port."""
    settings.PORT = 8282
    settings.EXTRA_HOSTNAMES = ["wharf.example"]
    return PORTAL


@pytest.fixture
def developer(web: Project, make_user: Any) -> User:
    """A developer of web: may pull its images and provision containers in it."""
    user = make_user("web-dev")
    Membership.objects.create(project=web, user=user, role=Role.DEVELOPER)
    return user


@pytest.fixture
def host(web: Project) -> ContainerHost:
    """A host of web that is ON, at a loopback port where nothing listens."""
    return ContainerHost.objects.create(
        project=web, name="docker-1", url=f"http://127.0.0.1:{free_port()}", state=HostState.ON
    )


@pytest.fixture
def tag(wired: Registry, web: Project, vulnerable_image: BuiltImage, portal_address: str) -> Tag:
    return pushed(wired, web, "web/app", "1.0", vulnerable_image)


def provision(client: APIClient) -> Any:
    return client.post(CONTAINERS, {"image": IMAGE, "name": "app"}, format="json")


def assert_refused(client: APIClient, reason: str) -> None:
    """The provisioning API refuses with the reason, and nothing is recorded or queued."""
    response = provision(client)
    assert response.status_code == 403, response.json()
    assert response.json() == {"detail": reason, "errors": {"image": [reason]}}
    assert not Container.objects.exists()
    assert not Job.objects.filter(kind="provision container").exists()


def test_an_image_not_scanned_yet_is_refused(tag: Tag, developer: User, host: ContainerHost) -> None:
    assert_refused(client_for(developer), f"{IMAGE} may not run: image not scanned yet")
    with pytest.raises(Forbidden, match=f"^{IMAGE} may not run: image not scanned yet$"):
        resolve_image(Actor(developer), tag.repository.project, IMAGE)


def test_a_vulnerable_image_is_refused_until_its_cves_are_allowlisted(
    loaded: None, tag: Tag, web: Project, developer: User, host: ContainerHost, portal_admin: User, make_user: Any
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    scanned(tag, admin)
    client = client_for(developer)
    assert_refused(client, VULNERABLE)
    with pytest.raises(Forbidden) as refused:
        resolve_image(Actor(developer), web, IMAGE)
    assert str(refused.value) == VULNERABLE

    # The system list excuses the critical one; the project's own list, until today, the high one.
    services.add_allowlist_entry(admin, "CVE-0000-1006")
    assert_refused(client, f"{IMAGE} may not run: image has 2 high vulnerabilities (CVE-0000-1001), threshold high")
    project_admin = make_user("web-admin")
    Membership.objects.create(project=web, user=project_admin, role=Role.ADMIN)
    services.add_allowlist_entry(Actor(project_admin, "127.0.0.1"), "CVE-0000-1001", web, timezone.localdate())

    assert resolve_image(Actor(developer), web, IMAGE).kind == INTEGRATED
    allowed = provision(client)
    assert allowed.status_code == 202, allowed.json()
    assert allowed.json()["container"]["image"] == IMAGE
    assert allowed.json()["container"]["host"] == {"id": host.pk, "name": "docker-1"}

    # The job asks again before it pulls: once the project's entry has expired, it fails with the reason and
    # never reaches the host.
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    AllowlistEntry.objects.filter(project=web).update(expires=yesterday)
    job_id = allowed.json()["job"]["id"]
    run_job(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.FAILED
    assert "image has 2 high vulnerabilities (CVE-0000-1001), threshold high" in job.error, job.error


def test_a_higher_threshold_lets_the_image_run(
    loaded: None, tag: Tag, web: Project, developer: User, host: ContainerHost, portal_admin: User
) -> None:
    scanned(tag, Actor(portal_admin, "127.0.0.1"))
    client = client_for(developer)
    web.severity = "critical"
    web.save()
    critical = "image has 2 critical vulnerabilities (CVE-0000-1006), threshold critical"
    assert_refused(client, f"{IMAGE} may not run: {critical}")

    services.add_allowlist_entry(Actor(portal_admin, "127.0.0.1"), "CVE-0000-1006", web)
    assert resolve_image(Actor(developer), web, IMAGE).project == web
    assert provision(client).status_code == 202

    # Without the rule, the image runs whatever its scan found.
    Container.objects.all().delete()
    web.prevent_vulnerable = False
    web.severity = "low"
    web.save()
    AllowlistEntry.objects.all().delete()
    assert provision(client).status_code == 202
