"""Tag details read from a real registry: the page and GET .../tags/{tag}/details, an index's platforms, the
config's author, labels and history, the cache by digest, and a registry that is down."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from portal.core.models import User
from projects.models import Project
from registries.client import OCI_INDEX, OCI_MANIFEST, RegistryClient
from registries.models import Repository, Tag
from tests.conftest import client_for, logged_in, page_text
from tests.integration.images import DescribedImage, push_described_index, push_image
from tests.integration.registry import Registry, point_portal_at
from tests.integration.registry_fixtures import quiet_registry  # noqa: F401 (the `registry` fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


@pytest.fixture
def wired(settings: Any, registry: Registry) -> Registry:
    return point_portal_at(settings, registry)


@pytest.fixture
def multi(wired: Registry, alpha: Project) -> tuple[Tag, DescribedImage]:
    """alpha/multi:1, a two-platform OCI index pushed to the real registry and recorded as the events would."""
    image = push_described_index(RegistryClient(), "alpha/multi", "1")
    repository = Repository.objects.create(project=alpha, name="alpha/multi")
    tag = Tag.objects.create(repository=repository, name="1", digest=image.digest, media_type=OCI_INDEX)
    return tag, image


def api_url(tag: str = "1", repository: str = "multi") -> str:
    return f"/api/v1/projects/alpha/repositories/{repository}/tags/{tag}/details"


def test_api_details_of_an_index_name_platforms_layers_labels_and_history(
    role_users: dict[str, User | None], multi: tuple[Tag, DescribedImage]
) -> None:
    _, image = multi
    response = client_for(role_users["viewer"]).get(api_url())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["digest"] == image.digest
    assert body["media_type"] == OCI_INDEX
    assert body["is_index"] is True
    assert {entry["platform"]: entry["digest"] for entry in body["images"]} == image.platforms
    arm = next(entry for entry in body["images"] if entry["architecture"] == "arm64")
    assert (arm["os"], arm["variant"], arm["media_type"]) == ("linux", "v8", OCI_MANIFEST)
    assert arm["created"] == "2026-11-30T08:15:42.123456Z"
    assert arm["author"] == "Wharf Builders <build@wharf.example>"
    assert arm["labels"] == {"org.opencontainers.image.title": "demo", "tier": "web"}
    assert [layer["size"] for layer in arm["layers"]] == image.layer_sizes
    assert arm["size"] == sum(image.layer_sizes)
    assert [step["created_by"] for step in arm["history"]] == [
        "/bin/sh -c #(nop) ADD file:base in / ",
        "LABEL tier=web",
        "RUN /bin/sh -c make install",
    ]
    assert [step["empty_layer"] for step in arm["history"]] == [False, True, False]
    assert body["pull_command"] == "docker pull testserver/alpha/multi:1"
    assert '"image": "testserver/alpha/multi:1"' in body["provision_command"]
    assert "/api/v1/projects/alpha/containers" in body["provision_command"]


def test_details_are_cached_by_digest_so_a_stopped_registry_still_shows_them(
    role_users: dict[str, User | None], multi: tuple[Tag, DescribedImage], settings: Any
) -> None:
    viewer = client_for(role_users["viewer"])
    assert viewer.get(api_url()).status_code == 200
    settings.REGISTRY_URL = "http://127.0.0.1:1"
    assert viewer.get(api_url()).json()["digest"] == multi[1].digest


def test_single_image_details_from_a_docker_manifest(
    role_users: dict[str, User | None], wired: Registry, alpha: Project
) -> None:
    pushed = push_image(wired.url, "alpha/single", ["2.0"], layer_bytes=4096)
    repository = Repository.objects.create(project=alpha, name="alpha/single")
    Tag.objects.create(repository=repository, name="2.0", digest=pushed.digest)
    body = client_for(role_users["developer"]).get(api_url("2.0", "single")).json()
    assert body["is_index"] is False
    [image] = body["images"]
    assert (image["platform"], image["author"], image["created"], image["history"]) == ("linux/amd64", "", None, [])
    assert len(image["layers"]) == 1


def test_registry_down_is_a_502_in_the_api_and_a_message_on_the_page(
    client: Client, role_users: dict[str, User | None], alpha: Project, settings: Any
) -> None:
    settings.REGISTRY_URL = "http://127.0.0.1:1"
    repository = Repository.objects.create(project=alpha, name="alpha/gone")
    Tag.objects.create(repository=repository, name="1", digest="sha256:" + "12" * 32)
    response = client_for(role_users["viewer"]).get(api_url("1", "gone"))
    assert response.status_code == 502
    assert "did not answer" in response.json()["detail"]
    page = logged_in(client, role_users["viewer"]).get(reverse("tag-detail", args=["alpha", "gone", "1"]))
    assert page.status_code == 200
    assert "The image details cannot be shown" in page_text(page)
    assert "docker pull testserver/alpha/gone:1" in page_text(page)


def test_manifest_gone_from_the_registry_is_said(
    client: Client, role_users: dict[str, User | None], wired: Registry, alpha: Project
) -> None:
    repository = Repository.objects.create(project=alpha, name="alpha/vanished")
    Tag.objects.create(repository=repository, name="1", digest="sha256:" + "34" * 32)
    assert client_for(role_users["viewer"]).get(api_url("1", "vanished")).status_code == 404
    page = logged_in(client, role_users["viewer"]).get(reverse("tag-detail", args=["alpha", "vanished", "1"]))
    assert "no longer holds the manifest" in page_text(page)


def test_page_shows_platforms_layers_history_and_commands(
    client: Client, role_users: dict[str, User | None], multi: tuple[Tag, DescribedImage]
) -> None:
    response = logged_in(client, role_users["developer"]).get(reverse("tag-detail", args=["alpha", "multi", "1"]))
    text = page_text(response)
    for expected in ("linux/amd64", "linux/arm64/v8", OCI_INDEX, "Wharf Builders", "tier=web", "make install"):
        assert expected in text
    assert "docker pull testserver/alpha/multi:1" in text
    assert "Provision" in text


@pytest.mark.parametrize("role", ["anonymous", "other_project_admin"])
def test_outsiders_get_no_details(role_users: dict[str, User | None], role: str, multi: Any) -> None:
    response = client_for(role_users[role]).get(api_url())
    assert response.status_code in (401, 404)


def test_unknown_tag_is_404(role_users: dict[str, User | None], multi: Any, client: Client) -> None:
    assert client_for(role_users["viewer"]).get(api_url("nope")).status_code == 404
    page = logged_in(client, role_users["viewer"]).get(reverse("tag-detail", args=["alpha", "multi", "nope"]))
    assert page.status_code == 404
