"""Container hosts and containers in a real browser: a DevOps administrator picks the project in the header, adds a
real dockerd in server-side TLS mode through the trust dialog (Cancel pins nothing, Trust pins and adds it),
provisions a container from an image pushed to the integrated registry, watches its live stats and logs, then
stops and removes it.

The browser talks to pytest-django's live server. The integrated registry is the push/pull tests' gunicorn portal
in front of a real registry, on the same test database; the daemon pulls from it with the pull token the portal
signs. Jobs (collection, provisioning) run eagerly inside the live server's request.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from hosts.models import ContainerHost, HostState
from portal.core.audit import Actor
from portal.core.models import TrustedCertificate, User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.integration.dockerd import Dockerd, start_dockerd
from tests.integration.test_registry_push_pull import Portal as RegistryPortal
from tests.integration.test_registry_push_pull import _wait_until_events_settle, build, login, rootfs  # noqa: F401
from tests.integration.test_registry_push_pull import portal as registry_portal  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
TICKER = 'sh -c "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done"'


@pytest.fixture(scope="module")
def daemon() -> Iterator[Dockerd]:
    """A dockerd on 127.0.0.1 with a server certificate and no client verification (server-side TLS)."""
    started = start_dockerd(tcp=True, tls="server")
    yield started
    started.stop()


@pytest.fixture
def devops(transactional_db: None, settings: Any, registry_portal: RegistryPortal) -> Iterator[User]:  # noqa: F811
    """A DevOps administrator of projects `dock` and `shipyard`; jobs run eagerly; the portal knows its registry
    address (the gunicorn's port), so it recognizes image references to it."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PORT = int(registry_portal.host.rsplit(":", 1)[1])
    user = User.objects.create_user("e2e-devops", password=PASSWORD)
    for name in ("dock", "shipyard"):
        Membership.objects.create(project=Project.objects.create(name=name), user=user, role=Role.ADMIN)
    yield user
    _wait_until_events_settle()


@pytest.fixture
def image(daemon: Dockerd, registry_portal: RegistryPortal, rootfs: Path, devops: User) -> Iterator[str]:  # noqa: F811
    """busybox pushed to shipyard in the integrated registry; the daemon keeps neither the image nor the login."""
    reference = f"{registry_portal.host}/shipyard/busybox:1"
    login(daemon, registry_portal, devops.username, create_token(Actor(devops), "docker")[1])
    build(daemon, rootfs, reference)
    daemon.ok("push", reference)
    daemon.ok("logout", registry_portal.host)
    daemon.ok("rmi", reference)
    yield reference
    daemon.run("rm", "--force", *daemon.ok("ps", "--all", "--quiet").split())
    daemon.run("image", "prune", "--all", "--force")


def sha256_of_server_certificate(port: int) -> str:
    """The SHA-256 thumbprint of what the daemon presents, worked out here, as the portal formats it."""
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
    return hashlib.sha256(der).digest().hex(":").upper()


def snap(page: Page, step: str) -> None:
    """Save a screenshot of a step (test-output/screenshots), for reviewing the pages without a browser."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"hosts_{step}.png"), full_page=True)


def open_add_host(portal: Portal, url: str) -> None:
    """Open + Host and fill in a Docker host at the URL."""
    portal.page.get_by_role("link", name="+ Host").click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("New Container Host")
    dialog.get_by_label("Name").fill("docker-1")
    dialog.get_by_label("Docker").check()
    dialog.get_by_label("URL").fill(url)
    dialog.get_by_role("button", name="Save").click()


def test_add_a_host_through_the_trust_dialog_provision_and_watch_it(
    daemon: Dockerd, devops: User, image: str, page: Page, portal: Portal
) -> None:
    # The browser page comes after the image, so its screenshot is taken before the container is cleaned away.
    portal.log_in(devops.username)
    # The header's project selector decides which project the Home pages show.
    with page.expect_navigation():
        page.get_by_label("Project", exact=True).select_option("shipyard")
    expect(page.get_by_label("Project", exact=True)).to_have_value("shipyard")
    portal.open_nav("Container Hosts")
    expect(page.get_by_role("heading", name="Container Hosts")).to_contain_text("shipyard")

    # Cancel on the trust dialog pins nothing and adds nothing.
    open_add_host(portal, daemon.url)
    trust = portal.dialog()
    expect(trust).to_contain_text("Trust this certificate?")
    expect(trust.locator('[data-field="sha256"]')).to_have_text(sha256_of_server_certificate(daemon.port))
    trust.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert not TrustedCertificate.objects.exists() and not ContainerHost.objects.exists()

    # Trust pins the certificate and retries the add with the same values.
    open_add_host(portal, daemon.url)
    trust = portal.dialog()
    expect(trust.locator('[data-field="address"]')).to_have_text(f"127.0.0.1:{daemon.port}")
    snap(page, "1_trust_dialog")
    trust.get_by_role("button", name="Trust").click()
    portal.expect_message("Host 'docker-1' added to project 'shipyard'.")
    row = page.locator('tr[data-host="docker-1"]')
    expect(row.locator('[data-field="state"]')).to_have_text("ON")
    expect(row.locator('[data-field="tls"]')).to_have_text("server-side TLS")
    assert ContainerHost.objects.get(name="docker-1").state == HostState.ON
    snap(page, "2_host_list")

    portal.open_nav("Containers")
    page.get_by_role("link", name="+ Container").click()
    dialog = portal.dialog()
    dialog.get_by_label("Image").fill(image)
    dialog.get_by_label("Name").fill("ticker")
    dialog.get_by_label("Command").fill(TICKER)
    dialog.get_by_label("Host").select_option(label="docker-1")
    snap(page, "3_provision_dialog")
    dialog.get_by_role("button", name="Provision").click()

    job = page.locator(".wharf-job-panel")
    expect(job.locator('[data-field="job-state"]')).to_have_text("Succeeded")
    expect(job.locator('[data-field="job-log"]')).to_contain_text("pulling")
    ticker = page.locator('tr[data-container="ticker"]')
    expect(ticker.locator('[data-field="state"]')).to_have_text("Running")
    ticker.get_by_role("link", name="ticker").click()

    # The stats fragment replaces itself every 3 seconds: its sample time changes, twice.
    stats = page.locator("#container-stats")
    expect(stats.locator('[data-field="memory"]')).to_contain_text("/")
    for _ in range(2):
        taken = stats.locator('[data-field="taken_at"]').inner_text()
        expect(stats.locator('[data-field="taken_at"]')).not_to_have_text(taken)
    expect(stats.locator('[data-field="cpu"]')).to_contain_text("%")
    snap(page, "4_container_stats")

    # Logs show the tail, and following adds the newer lines once each.
    logs = page.locator("#log-lines")
    expect(logs).to_contain_text("tick-1")
    shown = max(int(n) for n in re.findall(r"tick-(\d+)", logs.inner_text()))
    expect(logs).to_contain_text(f"tick-{shown + 3}")
    lines = [line for line in logs.inner_text().splitlines() if line]
    assert len(lines) == len(set(lines)), f"a followed line was shown twice: {lines}"

    # Stop and Remove each run as a job whose outcome the page shows; the container is then gone from the host.
    page.get_by_role("button", name="Stop", exact=True).click()
    portal.expect_message("Stop of 'ticker' started")
    expect(page.locator(".wharf-job-panel [data-field='job-state']")).to_have_text("Succeeded")
    expect(page.locator("h2 [data-field='state']")).to_have_text("Exited")
    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Remove", exact=True).click()
    portal.expect_message("Remove of 'ticker' started")
    expect(page.get_by_text("This container is gone from its host")).to_be_visible()
    assert daemon.ok("ps", "--all", "--quiet").strip() == ""
