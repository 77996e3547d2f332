"""Replication in a real browser: an image pushed into a Wharf project, an HTTPS endpoint with a self-signed
certificate added through the trust dialog, a rule, Replicate, and the execution page refreshing itself until its
task succeeded; the copy is real (a Celery worker copies from the portal's registry to the endpoint's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from portal.core.models import User
from projects.models import Project
from registries.models import Tag
from replication.models import Execution
from tests.e2e.conftest import Portal
from tests.integration.images import Image, push_image
from tests.integration.registry import Registry, point_portal_at, start_registry, start_standalone_registry
from tests.integration.registry_fixtures import wait_for
from tests.integration.slapd import free_port
from tests.integration.tcp_relay import TcpRelay
from tests.integration.tls_pki import KeyPair, self_signed_certificate
from tests.integration.worker import Worker, running_worker, sending_to

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# A layer big enough that the progress in bytes means something, small enough to copy in a moment.
LAYER_BYTES = 4 * 1024 * 1024
# Seconds the relay holds each piece sent to the endpoint: a 4 MiB layer then takes a few seconds.
RELAY_DELAY = 0.02


@pytest.fixture(scope="module")
def source(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The portal's registry: token auth, its events sent to the live server."""
    registry = start_registry(tmp_path_factory.mktemp("source"), notify_url=live_server.url + "/service/notifications")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def endpoint_tls(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """The endpoint's self-signed certificate."""
    return self_signed_certificate(tmp_path_factory.mktemp("endpoint-tls"))


@pytest.fixture(scope="module")
def endpoint_registry(tmp_path_factory: pytest.TempPathFactory, endpoint_tls: KeyPair) -> Iterator[Registry]:
    """The remote site: a distribution registry serving HTTPS with the self-signed certificate."""
    registry = start_standalone_registry(tmp_path_factory.mktemp("endpoint"), tls=endpoint_tls)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def slow_endpoint(endpoint_registry: Registry) -> Iterator[str]:
    """The endpoint's address behind a relay that slows what is sent to it, so a copy lasts a few seconds and the
    page can be watched while it runs; every byte is still the registry's own (TLS passes through)."""
    relay = TcpRelay(free_port(), int(endpoint_registry.url.rsplit(":", 1)[1]), delay=RELAY_DELAY)
    yield f"https://127.0.0.1:{relay.port}"
    relay.close()


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, source: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, str]]:
    """A real Celery worker on Redis, on the test database, talking to the portal's registry."""
    env = {"WHARF_DATA_DIR": str(django_settings.DATA_DIR), "WHARF_REGISTRY_URL": source.url}
    with running_worker(tmp_path_factory.mktemp("worker"), env) as started:
        yield started


@pytest.fixture
def wired(settings: Any, source: Registry, worker: tuple[Worker, str]) -> Iterator[Worker]:
    """The live server talking to the portal's registry and sending its tasks (events, jobs) to the worker."""
    from portal.celery import app

    point_portal_at(settings, source)
    process, broker = worker
    settings.CELERY_BROKER_URL = broker
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with sending_to(app, broker, process.queue):
        yield process


@pytest.fixture
def shipyard(transactional_db: None) -> Project:
    """The Wharf project whose images are replicated."""
    return Project.objects.create(name="shipyard")


def pushed(source: Registry, worker: Worker, repository: str, tag: str) -> Image:
    """Push an image into the portal's registry and wait until the worker applied its event."""
    image = push_image(source.url, repository, [tag], layer_bytes=LAYER_BYTES)
    recorded = Tag.objects.filter(repository__name=repository, name=tag)
    wait_for(lambda: recorded.exists(), f"the tag {repository}:{tag} (worker log: {worker.log()[-2000:]})", source)
    return image


def add_endpoint_through_the_trust_dialog(portal: Portal, name: str, url: str) -> None:
    """+ New Endpoint with Verify Remote Cert off: Test Connection shows the certificate, Trust pins it, OK saves."""
    page = portal.page
    page.get_by_role("link", name="Replication Endpoints").click()
    page.get_by_role("link", name="+ New Endpoint").click()
    dialog = portal.dialog()
    dialog.get_by_label("Endpoint name").fill(name)
    dialog.get_by_label("Kind").select_option(label="Docker registry (V2)")
    dialog.get_by_label("Endpoint URL").fill(url)
    verify = dialog.get_by_label("Verify Remote Cert")
    expect(verify).to_be_checked()
    expect(dialog).to_contain_text("shown with its thumbprints and pinned when you trust it")
    verify.uncheck()
    dialog.get_by_role("button", name="Test Connection").click()

    trust = portal.dialog()
    expect(trust).to_contain_text("Trust this certificate?")
    expect(trust).to_contain_text("CN=wharf-test-registry")
    trust.get_by_role("button", name="Trust").click()
    tested = portal.dialog()
    expect(tested).to_contain_text("Connection tested: V2 registry API, no login asked")
    expect(tested.get_by_label("Endpoint URL")).to_have_value(url)
    tested.get_by_role("button", name="OK").click()
    portal.expect_message(f"Endpoint '{name}' added.")
    expect(page.locator(f'tr[data-endpoint="{name}"]')).to_contain_text("No (pinned certificate)")


def add_manual_rule(portal: Portal, name: str, project: str, endpoint: str) -> None:
    """New Replication Rule: a manual, disabled-until-saved rule (it runs when Replicate is pressed)."""
    page = portal.page
    page.get_by_role("link", name="Replication Rules").click()
    page.get_by_role("link", name="New Replication Rule").click()
    dialog = portal.dialog()
    dialog.get_by_label("Name", exact=True).fill(name)
    dialog.get_by_label("Source project").select_option(project)
    dialog.get_by_label("Endpoint", exact=True).select_option(endpoint)
    expect(dialog.get_by_label("Destination project")).to_have_attribute("placeholder", "same as source")
    # The trigger shows its own option: immediate asks about deletions, scheduled for a cron expression.
    deletions = dialog.get_by_label("Also delete on the endpoint what is deleted here")
    expect(deletions).to_be_hidden()
    dialog.get_by_label("Trigger Mode").select_option("immediate")
    expect(deletions).to_be_visible()
    dialog.get_by_label("Trigger Mode").select_option("scheduled")
    expect(deletions).to_be_hidden()
    expect(dialog.get_by_label("Schedule")).to_be_visible()
    dialog.get_by_label("Trigger Mode").select_option("manual")
    dialog.get_by_label("Enable rule").check()
    dialog.get_by_role("button", name="Save").click()
    portal.expect_message(f"Rule '{name}' created.")


def test_replicate_a_project_to_an_https_endpoint_pinned_through_the_trust_dialog(
    page: Page,
    portal: Portal,
    admin: User,
    shipyard: Project,
    wired: Worker,
    source: Registry,
    endpoint_registry: Registry,
    endpoint_tls: KeyPair,
    slow_endpoint: str,
) -> None:
    pushed(source, wired, "shipyard/app", "1.0")
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")

    add_endpoint_through_the_trust_dialog(portal, "dr-site", slow_endpoint)
    add_manual_rule(portal, "shipyard-dr", "shipyard", "dr-site")
    expect(page.locator('tr[data-rule="shipyard-dr"]')).to_contain_text("Enabled")
    # Enabling the rule replicated what matched at once; a later push waits for Replicate (the rule is manual).
    first = Execution.objects.filter(rule__name="shipyard-dr")
    wait_for(lambda: first.filter(job__state="succeeded").exists(), "the first execution", source, seconds=60)
    web = pushed(source, wired, "shipyard/web", "2.0")

    page.reload()
    page.get_by_role("button", name="Replicate shipyard-dr").click()
    portal.expect_message("Replication of rule 'shipyard-dr' started")
    expect(page.get_by_role("heading", name="Replication execution")).to_be_visible()
    address = page.url
    # No reload: the region refreshes itself while the copy runs, until the execution ends.
    state = page.locator('[data-field="execution-state"]')
    expect(state).to_contain_text("Running")
    expect(state).to_contain_text("Succeeded", timeout=60_000)
    assert page.url == address
    expect(page.locator('[data-field="execution-tasks"]')).to_contain_text("2 of 2 tasks ended")
    copied = page.locator('tr[data-task="shipyard/web"]')
    expect(copied.locator('[data-field="task-state"]')).to_contain_text("Succeeded")
    expect(copied).to_contain_text("shipyard/web → shipyard/web")
    expect(copied.locator('[data-field="tags"]')).to_have_text("1 / 0")
    expect(copied.locator('[data-field="blobs"]')).to_have_text("2 / 0 / 0")
    skipped = page.locator('tr[data-task="shipyard/app"]')
    expect(skipped.locator('[data-field="task-state"]')).to_contain_text("Succeeded")
    expect(skipped.locator('[data-field="tags"]')).to_have_text("0 / 1")

    copied.get_by_role("link", name="Log of shipyard/web").click()
    log = portal.dialog().locator('[data-field="job-log"]')
    expect(log).to_contain_text("copying 1 tags of shipyard/web to dr-site as shipyard/web")
    portal.dialog().get_by_role("link", name="Close").click()

    # The copy is real: the endpoint serves the same manifest.
    answer = requests.head(
        f"{endpoint_registry.url}/v2/shipyard/web/manifests/2.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        verify=str(endpoint_tls.cert),
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["Docker-Content-Digest"] == web.digest

    # The rules page charts both executions (Chart.js drew a bar for each) and links the last one.
    portal.open_nav("Global Registries")
    page.get_by_role("link", name="Replication Rules").click()
    expect(page.locator("#replication-chart")).to_have_attribute("data-drawn", "2")
    expect(page.locator('tr[data-rule="shipyard-dr"] [data-field="last-execution"]')).to_contain_text("Succeeded")
