"""Content trust and VCH registry whitelists against a real Docker daemon standing in for a VCH.

The VCH is the real dockerd behind tests/integration/vch_proxy.py, whose /info reports the VIC engine and a
registry whitelist exactly as VIC 1.4 writes it in SystemStatus. The portal learns the whitelist when the VCH
is added and at every collection, and records what content trust asks of it; changing the proxy's whitelist
between collections stands for the vSphere administrator redeploying the VCH.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from hosts import collection
from hosts.models import ContainerHost, WhitelistChange, WhitelistState
from portal.core.models import AuditEvent
from tests.conftest import client_for
from tests.integration.dockerd import Dockerd, dockerd_fixture
from tests.integration.vch_proxy import EngineProxy

PORTAL = "127.0.0.1:8282"
HOSTS = "/api/v1/projects/alpha/hosts"

engine = dockerd_fixture("dockerd on http://127.0.0.1:PORT (no TLS): the engine behind the stand-in VCH.", tcp=True)


@pytest.fixture
def vch(engine: Dockerd) -> Iterator[EngineProxy]:
    """A stand-in VCH deployed without whitelist mode; a test sets `whitelist` to redeploy it with one."""
    proxy = EngineProxy(engine.url, vic=True, insecure=["harbor.corp.example:80"])
    yield proxy
    proxy.close()


@pytest.fixture(autouse=True)
def _portal(settings: Any) -> None:
    """The portal's registry is 127.0.0.1:8282; every host answers at once here."""
    settings.REGISTRY_TOKEN_REALM = f"https://{PORTAL}/service/token"
    settings.HOST_TIMEOUT_SECONDS = 5


@pytest.fixture
def admin(role_users) -> APIClient:
    """The API as a DevOps administrator of project alpha (adds hosts, switches content trust)."""
    return client_for(role_users["project_admin"])


def add_vch(client: APIClient, proxy: EngineProxy, name: str = "vch-1") -> dict[str, Any]:
    """Add the stand-in VCH to project alpha through the API; its body."""
    response = client.post(HOSTS, {"name": name, "kind": "vch", "url": proxy.url}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def content_trust(client: APIClient, on: bool) -> None:
    response = client.patch("/api/v1/projects/alpha", {"content_trust": on}, format="json")
    assert response.status_code == 200, response.json()


def test_collection_learns_the_vchs_whitelist(admin, vch: EngineProxy) -> None:
    add_vch(admin, vch)
    vch.whitelist = ["127.0.0.0/8", "docker.io"]

    collection.collect_all()

    host = ContainerHost.objects.get(name="vch-1")
    assert host.whitelist_mode == "enabled"
    assert host.whitelisted_registries == ["127.0.0.0/8", "docker.io"]
    assert host.insecure_registries == ["harbor.corp.example:80"]
    assert not WhitelistChange.objects.exists(), "nothing is asked of a VCH while content trust is off"


def test_enabling_content_trust_records_the_change_the_vch_needs(admin, vch: EngineProxy) -> None:
    body = add_vch(admin, vch)
    assert body["registry_whitelist"]["mode"] == "disabled"

    content_trust(admin, True)

    change = admin.get(f"{HOSTS}/{body['id']}").json()["content_trust_whitelist"]
    assert change["state"] == "change_needed"
    assert change["current_mode"] == "disabled"
    assert change["required"] == [PORTAL]
    assert change["command"].endswith(f"--whitelist-registry {PORTAL}")
    event = AuditEvent.objects.get(action="update", detail__has_key="whitelist")
    assert event.resource_name == "vch-1"
    assert event.detail["whitelist"] == "change_needed"


def test_vch_redeployed_with_the_portal_registry_is_compliant_after_the_next_collection(admin, vch) -> None:
    add_vch(admin, vch)
    content_trust(admin, True)
    vch.whitelist = [PORTAL]

    collection.collect_all()

    change = WhitelistChange.objects.get(host__name="vch-1")
    assert change.state == WhitelistState.COMPLIANT
    assert change.current == [PORTAL]
    events = AuditEvent.objects.filter(action="update", detail__has_key="whitelist").order_by("pk")
    states = [event.detail["whitelist"] for event in events]
    assert states == ["change_needed", "compliant"]


def test_vch_added_to_a_content_trust_project_with_a_whitelist_without_the_portal_refuses(admin, vch) -> None:
    content_trust(admin, True)
    vch.whitelist = ["harbor.corp.example:443"]

    body = add_vch(admin, vch)

    change = body["content_trust_whitelist"]
    assert change["state"] == "refused"
    assert change["current"] == ["harbor.corp.example:443"]
    assert change["command"] == ""
    assert "does not permit 127.0.0.1:8282" in change["reason"]


def test_disabling_content_trust_lets_the_vch_return_to_its_whitelist(admin, vch: EngineProxy) -> None:
    vch.whitelist = ["127.0.0.0/8"]
    body = add_vch(admin, vch)
    content_trust(admin, True)

    content_trust(admin, False)
    collection.collect_all()

    change = admin.get(f"{HOSTS}/{body['id']}").json()["content_trust_whitelist"]
    assert change["state"] == "lifted"
    assert change["required"] == []
