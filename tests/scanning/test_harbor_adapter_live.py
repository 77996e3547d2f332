"""The Harbor adapter client against Wharf's own adapter server, live: a portal in gunicorn over HTTPS with a Celery
worker on its scans queue serves /scanner/api/v1/; the client in this process asks it to scan the fixture image
held behind that portal's /v2/ front door, pulled with HTTP Basic credentials as Harbor hands them to an adapter.
The findings that come back are exactly those the built-in scanner's indexer and matcher give for the same image.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from portal.core import trust
from portal.core.audit import Actor
from portal.core.models import JobState, User
from portal.core.services import create_token
from projects.models import Project
from registries.client import OCI_MANIFEST, RegistryClient
from registries.client_auth import SystemTokenAuth
from scanning import indexer, matcher, services
from scanning.harbor_adapter import VULNERABILITY_REPORT
from scanning.harbor_adapter_client import HarborAdapterClient
from scanning.models import AdapterScan, IndexedLayer, ScanState
from tests.integration.test_registry_push_pull import Portal, _wait_until_events_settle, live_portal
from tests.scanning.image_builder import BuiltImage, push_built_image
from tests.scanning.scanned_images import FINDINGS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The scanning portal; its administrator allows loopback registries (every test address is on loopback)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS", "127.0.0.0/8")
        with live_portal(tmp_path_factory.mktemp("scanner-portal")) as server:
            yield server


def built_in_findings(registry_url: str, repository: str, digest: str) -> list[Any]:
    """What the built-in scanner finds in the image: its indexer over the layers, its matcher over the packages
    (read straight from the registry, keeping no layer index, so the adapter's worker indexes the layers itself)."""
    client = RegistryClient(registry_url, auth=SystemTokenAuth())
    _, layers = indexer.read_image(client, repository, digest)
    image = indexer.index_image(layers)
    return matcher.match(image.distribution, image.packages)


def test_a_scan_asked_of_the_live_adapter_finds_exactly_what_the_built_in_scanner_finds(
    portal: Portal, vulnerable_image: BuiltImage, feed_dir: Path, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    services.import_path(admin, feed_dir)
    Project.objects.create(name="web")
    digest = push_built_image(portal.registry.url, "web/app", "1.0", vulnerable_image)
    expected = built_in_findings(portal.registry.url, "web/app", digest)
    assert {
        (f.vulnerability, f.package, f.installed_version, f.fixed_version, f.severity) for f in expected
    } == FINDINGS
    assert not IndexedLayer.objects.exists()
    token = create_token(admin, "harbor")[1]
    # HTTPS is verified: the portal's certificate is unknown until it is trusted (the trust dialog's question)...
    with pytest.raises(trust.UntrustedCertificate):
        HarborAdapterClient(f"{portal.url}/scanner", f"Bearer {token}").metadata()
    # ... and both sides verify it once its CA is pinned for its address.
    trust.trust(admin, portal.host, Path(portal.ca).read_text())
    pull = "Basic " + base64.b64encode(f"{portal_admin.username}:{token}".encode()).decode()

    client = HarborAdapterClient(f"{portal.url}/scanner", f"Bearer {token}")
    described = client.metadata()
    scan_id = client.scan(portal.url, pull, "web/app", digest, OCI_MANIFEST, "1.0")
    result = client.report(scan_id, deadline=120)

    assert described.scanner.name == "Wharf" and client.report_type == VULNERABILITY_REPORT
    assert result.media_type == VULNERABILITY_REPORT
    assert [astuple(finding) for finding in result.findings] == [astuple(finding) for finding in expected]
    assert result.artifact.digest == digest and result.artifact.repository == "web/app"
    scan = AdapterScan.objects.select_related("job").get(uuid=scan_id)
    assert scan.state == ScanState.SUCCEEDED and scan.registry_url == portal.url
    assert scan.job.state == JobState.SUCCEEDED and scan.job.worker, scan.job.log
    assert scan.authorization == ""
    # The worker pulled through the front door and indexed every layer itself.
    assert IndexedLayer.objects.filter(digest__in=vulnerable_image.layer_digests).count() == 2
    _wait_until_events_settle()
