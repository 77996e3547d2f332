"""The external registry pages: Global Registries, the +Registry dialog (Verify, Save), Project Registries, and
Library > Repositories search, against the V1 test server (tests/v1server.py) running in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.core.audit import Actor
from registries import external_services
from registries.external import DOCKER_HUB
from registries.models import ExternalRegistry
from tests.conftest import logged_in, page_text
from tests.v1server import V1Registry


@pytest.fixture(autouse=True)
def _no_docker_hub(db) -> None:
    """Tests never reach the internet: the default Docker Hub registry is disabled."""
    ExternalRegistry.objects.filter(address=DOCKER_HUB).update(enabled=False)


@pytest.fixture
def v1() -> Iterator[V1Registry]:
    with V1Registry({"legacy/tool": {"1.0": "a", "2.0": "b"}}, {"legacy/tool": "An old tool"}) as server:
        yield server


def test_only_portal_admins_open_global_registries(client, role_users) -> None:
    assert logged_in(client, role_users["project_admin"]).get("/registries/").status_code == 403
    page = logged_in(client, role_users["portal_admin"]).get("/registries/")
    assert page.status_code == 200
    assert "docker-hub" in page_text(page) and "Source Registries" in page_text(page)


def test_verify_shows_what_it_found_then_save_adds(client, portal_admin, v1) -> None:
    logged_in(client, portal_admin)
    form = {"address": v1.url, "name": "legacy", "insecure": "on", "verify": "1"}
    verified = client.post("/registries/new/", form, HTTP_HX_REQUEST="true")
    assert "Verified: a V1 registry with no authentication." in page_text(verified)
    assert not ExternalRegistry.objects.filter(name="legacy").exists()
    saved = client.post("/registries/new/", {**form, "save": "1"}, HTTP_HX_REQUEST="true")
    assert saved.status_code == 204 and saved["HX-Redirect"] == "/registries/"
    assert ExternalRegistry.objects.get(name="legacy").api_version == "v1"


def test_verify_names_the_exact_failure(client, portal_admin, v1) -> None:
    logged_in(client, portal_admin)
    refused = client.post("/registries/new/", {"address": "http://127.0.0.1:1", "name": "x", "insecure": "on"})
    assert refused.status_code == 502 and "refused the connection" in page_text(refused)
    plain = client.post("/registries/new/", {"address": v1.url, "name": "x"})
    assert "tick insecure (HTTP)" in page_text(plain)


def test_project_tab_lists_own_and_global_registries(client, role_users, alpha, v1) -> None:
    admin = Actor(role_users["portal_admin"])
    external_services.create_registry(admin, "global-legacy", v1.url, insecure=True)
    external_services.create_registry(Actor(role_users["project_admin"]), "mine", v1.url, insecure=True, project=alpha)
    text = page_text(logged_in(client, role_users["viewer"]).get("/projects/alpha/registries/"))
    assert "mine" in text and "global-legacy" in text and "Global (read-only)" in text
    assert "+ New Project Registry" not in text and "Delete" not in text
    managed = page_text(logged_in(client, role_users["project_admin"]).get("/projects/alpha/registries/"))
    assert "+ New Project Registry" in managed


def test_project_admin_cannot_delete_a_global_registry(client, role_users) -> None:
    hub = ExternalRegistry.objects.get(address=DOCKER_HUB)
    response = logged_in(client, role_users["project_admin"]).post(f"/registries/{hub.pk}/delete/")
    assert response.status_code == 403
    assert ExternalRegistry.objects.filter(pk=hub.pk).exists()


def test_library_search_and_tags(client, role_users, alpha, v1) -> None:
    external_services.create_registry(Actor(role_users["portal_admin"]), "legacy", v1.url, insecure=True)
    logged_in(client, role_users["viewer"])
    text = page_text(client.get("/library/search/?project=alpha&q=tool"))
    assert 'data-repository="legacy/tool"' in text and "An old tool" in text
    tags = page_text(client.get("/library/search/alpha/legacy/legacy/tool/tags/", HTTP_HX_REQUEST="true"))
    assert 'data-tag="1.0"' in tags and 'data-tag="2.0"' in tags
    assert f"docker pull {v1.url.split('//')[1]}/legacy/tool:2.0" in tags


def test_admin_disables_and_enables_a_global_registry(client, portal_admin) -> None:
    hub = ExternalRegistry.objects.get(address=DOCKER_HUB)
    logged_in(client, portal_admin)
    client.post(f"/registries/{hub.pk}/toggle/", {"enabled": "true"})
    hub.refresh_from_db()
    assert hub.enabled
    response = client.post(f"/registries/{hub.pk}/toggle/", {"enabled": "false"}, follow=True)
    assert "Registry &#x27;docker-hub&#x27; disabled." in page_text(response)
    hub.refresh_from_db()
    assert not hub.enabled


def test_registry_lists_filter_by_name_or_address(api, alpha) -> None:
    ExternalRegistry.objects.create(name="mirror", address="https://mirror.example/team")
    assert [r["name"] for r in api.get("/api/v1/registries?q=mirror.example").json()["results"]] == ["mirror"]
    assert [r["name"] for r in api.get("/api/v1/registries?q=hub").json()["results"]] == ["docker-hub"]
    listed = api.get("/api/v1/projects/alpha/registries?q=mirr").json()["results"]
    assert [(r["name"], r["global"]) for r in listed] == [("mirror", True)]


def test_edit_dialog_starts_filled_in_and_saves_after_verifying(client, portal_admin, v1) -> None:
    registry = external_services.create_registry(Actor(portal_admin), "legacy", v1.url, insecure=True)
    logged_in(client, portal_admin)
    opened = client.get(f"/registries/{registry.pk}/edit/", HTTP_HX_REQUEST="true")
    text = page_text(opened)
    assert "Edit Registry legacy" in text
    assert f'value="{v1.url}"' in opened.content.decode() and 'value="legacy"' in opened.content.decode()
    form = {"address": v1.url, "name": "old-tools", "insecure": "on", "save": "1"}
    saved = client.post(f"/registries/{registry.pk}/edit/", form, HTTP_HX_REQUEST="true")
    assert saved.status_code == 204 and saved["HX-Redirect"] == "/registries/"
    registry.refresh_from_db()
    assert registry.name == "old-tools" and registry.last_verified is not None


def test_edit_to_an_address_that_does_not_answer_keeps_the_registry(client, portal_admin, v1) -> None:
    registry = external_services.create_registry(Actor(portal_admin), "legacy", v1.url, insecure=True)
    logged_in(client, portal_admin)
    form = {"address": "http://127.0.0.1:1", "name": "legacy", "insecure": "on", "save": "1"}
    refused = client.post(f"/registries/{registry.pk}/edit/", form, HTTP_HX_REQUEST="true")
    assert refused.status_code == 502 and "refused the connection" in page_text(refused)
    registry.refresh_from_db()
    assert registry.address == v1.url


def test_edit_keeps_the_credential_unless_another_is_chosen(client, portal_admin, v1) -> None:
    from portal.core.models import Credential

    credential = Credential.objects.create(name="robot", username="robot")
    registry = external_services.create_registry(Actor(portal_admin), "legacy", v1.url, insecure=True)
    ExternalRegistry.objects.filter(pk=registry.pk).update(credential=credential)
    logged_in(client, portal_admin)
    opened = client.get(f"/registries/{registry.pk}/edit/", HTTP_HX_REQUEST="true").content.decode()
    assert '<option value="robot" selected>' in opened


def test_project_registry_edit_is_for_its_devops_administrators(client, role_users, alpha, v1) -> None:
    registry = external_services.create_registry(
        Actor(role_users["project_admin"]), "mine", v1.url, insecure=True, project=alpha
    )
    assert logged_in(client, role_users["developer"]).get(f"/registries/{registry.pk}/edit/").status_code == 403
    assert logged_in(client, role_users["project_admin"]).get(f"/registries/{registry.pk}/edit/").status_code == 200
    assert (
        logged_in(client, role_users["other_project_admin"]).get(f"/registries/{registry.pk}/edit/").status_code == 404
    )
