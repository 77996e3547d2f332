"""The repository and tag API: lists, search, pull commands, deletion per role, siblings kept, GC and its schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from portal.core.models import AuditEvent, User
from projects.models import Project
from registries import services
from registries.client import DOCKER_MANIFEST, Manifest, ManifestHead, RegistryClient
from registries.models import Repository, Tag
from tests.conftest import client_for

SHARED = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


class FakeRegistry:
    """Stands in for RegistryClient: tags -> digests, manifests by digest, and a record of the writes."""

    def __init__(self) -> None:
        self.tags_by_repo: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, ...]] = []

    def tags(self, repository: str) -> list[str]:
        return sorted(self.tags_by_repo.get(repository, {}))

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        digest = self.tags_by_repo.get(repository, {}).get(reference)
        return ManifestHead(digest, DOCKER_MANIFEST) if digest else None

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        return Manifest(f"bytes of {reference}".encode(), DOCKER_MANIFEST, reference)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        self.calls.append(("delete", repository, digest))
        tags = self.tags_by_repo.get(repository, {})
        for name in [n for n, d in tags.items() if d == digest]:
            del tags[name]
        return True

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        self.calls.append(("put", repository, tag, manifest.content.decode()))
        self.tags_by_repo.setdefault(repository, {})[tag] = manifest.digest
        return manifest.digest

    # The client's own way of deleting one tag, over the calls above.
    remove_tag = RegistryClient.remove_tag


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(services, "RegistryClient", lambda: fake)
    return fake


@pytest.fixture
def app(alpha: Project, registry: FakeRegistry) -> Repository:
    """alpha/app with tags 1.0 and latest on one manifest and 2.0 on another."""
    repository = Repository.objects.create(project=alpha, name="alpha/app", pull_count=7)
    now = timezone.now()
    for index, (name, digest) in enumerate((("1.0", SHARED), ("latest", SHARED), ("2.0", OTHER))):
        Tag.objects.create(
            repository=repository, name=name, digest=digest, size=100, pushed_by="alice",
            pushed_at=now - timedelta(minutes=index),
        )  # fmt: skip
    registry.tags_by_repo["alpha/app"] = {"1.0": SHARED, "latest": SHARED, "2.0": OTHER}
    return repository


def test_project_repositories_list_with_counts_and_search(role_users: dict, app: Repository, beta: Project) -> None:
    Repository.objects.create(project=alpha_project(), name="alpha/tools/cli")
    Repository.objects.create(project=beta, name="beta/app")
    client = client_for(role_users["viewer"])
    page = client.get("/api/v1/projects/alpha/repositories").json()
    assert [(r["name"], r["tag_count"], r["pull_count"]) for r in page["results"]] == [
        ("alpha/app", 3, 7),
        ("alpha/tools/cli", 0, 0),
    ]
    assert [r["name"] for r in client.get("/api/v1/projects/alpha/repositories?q=cli").json()["results"]] == [
        "alpha/tools/cli"
    ]


def test_project_repositories_sort_as_the_table_does(role_users: dict, app: Repository) -> None:
    Repository.objects.create(project=alpha_project(), name="alpha/tools/cli", pull_count=9)
    client = client_for(role_users["viewer"])
    for sort, expected in (("-pulls", ["alpha/tools/cli", "alpha/app"]), ("-tags", ["alpha/app", "alpha/tools/cli"])):
        page = client.get(f"/api/v1/projects/alpha/repositories?sort={sort}").json()
        assert [r["name"] for r in page["results"]] == expected
    refused = client.get("/api/v1/projects/alpha/repositories?sort=size")
    assert refused.status_code == 400 and "sort" in refused.json()["errors"]


def alpha_project() -> Project:
    return Project.objects.get(name="alpha")


def test_library_lists_only_what_the_caller_may_pull(role_users: dict, app: Repository, beta: Project) -> None:
    Repository.objects.create(project=beta, name="beta/app")
    public = Project.objects.create(name="open", public=True)
    Repository.objects.create(project=public, name="open/app")
    names = lambda user: [r["name"] for r in client_for(user).get("/api/v1/repositories").json()["results"]]  # noqa: E731
    assert names(role_users["viewer"]) == ["alpha/app", "open/app"]
    assert names(role_users["other_project_admin"]) == ["beta/app", "open/app"]
    assert names(role_users["portal_admin"]) == ["alpha/app", "beta/app", "open/app"]
    page = client_for(role_users["viewer"]).get("/api/v1/repositories?q=open").json()
    assert [(r["name"], r["project"]) for r in page["results"]] == [("open/app", "open")]


@pytest.mark.parametrize("path", ["alpha/tools/cli", "alpha%2Ftools%2Fcli", "tools/cli"])
def test_repository_names_with_slashes_resolve(role_users: dict, alpha: Project, path: str) -> None:
    Repository.objects.create(project=alpha, name="alpha/tools/cli")
    Tag.objects.create(repository=Repository.objects.get(), name="v1", digest=SHARED)
    client = client_for(role_users["viewer"])
    assert client.get(f"/api/v1/projects/alpha/repositories/{path}").json()["name"] == "alpha/tools/cli"
    tags = client.get(f"/api/v1/projects/alpha/repositories/{path}/tags").json()["results"]
    assert [t["name"] for t in tags] == ["v1"]


def test_tags_list_has_pull_command(role_users: dict, app: Repository) -> None:
    client = client_for(role_users["viewer"])
    tags = client.get("/api/v1/projects/alpha/repositories/app/tags", HTTP_HOST="wharf.test:8282").json()["results"]
    assert [t["name"] for t in tags] == ["1.0", "latest", "2.0"]
    first = tags[0]
    assert (first["digest"], first["size"], first["pushed_by"]) == (SHARED, 100, "alice")
    assert first["pull_command"] == "docker pull wharf.test:8282/alpha/app:1.0"


@pytest.mark.parametrize(
    ("role", "expected"),
    [("viewer", 403), ("developer", 403), ("other_project_admin", 404), ("project_admin", 204), ("portal_admin", 204)],
)
def test_tag_delete_per_role(role_users: dict, app: Repository, role: str, expected: int) -> None:
    response = client_for(role_users[role]).delete("/api/v1/projects/alpha/repositories/app/tags/2.0")
    assert response.status_code == expected, response.content
    assert Tag.objects.filter(name="2.0").exists() == (expected != 204)


def test_deleting_tag_keeps_sibling_tags(role_users: dict, app: Repository, registry: FakeRegistry) -> None:
    response = client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/repositories/app/tags/1.0")
    assert response.status_code == 204
    assert registry.calls == [("delete", "alpha/app", SHARED), ("put", "alpha/app", "latest", f"bytes of {SHARED}")]
    assert registry.tags_by_repo["alpha/app"] == {"latest": SHARED, "2.0": OTHER}
    assert sorted(app.tags.values_list("name", flat=True)) == ["2.0", "latest"]
    audit = AuditEvent.objects.get(action="delete", resource_type="repository")
    assert (audit.resource_name, audit.username) == ("alpha/app:1.0", "alpha-admin")


def test_deleting_the_last_tag_deletes_the_manifest(role_users: dict, app: Repository, registry: FakeRegistry) -> None:
    client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/repositories/app/tags/2.0")
    assert registry.calls == [("delete", "alpha/app", OTHER)]


def test_repository_delete_removes_every_manifest(role_users: dict, app: Repository, registry: FakeRegistry) -> None:
    response = client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/repositories/app")
    assert response.status_code == 204
    assert registry.calls == [("delete", "alpha/app", SHARED), ("delete", "alpha/app", OTHER)]
    assert not Repository.objects.exists()
    assert client_for(role_users["portal_admin"]).delete("/api/v1/projects/alpha").status_code == 204


def test_repository_delete_refused_to_developer(role_users: dict, app: Repository, registry: FakeRegistry) -> None:
    response = client_for(role_users["developer"]).delete("/api/v1/projects/alpha/repositories/app")
    assert response.status_code == 403
    assert registry.calls == []


def test_repository_list_query_count_does_not_grow(api, alpha: Project) -> None:
    def count(page_size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"/api/v1/repositories?page_size={page_size}").status_code == 200
        return len(queries)

    for index in range(30):
        repository = Repository.objects.create(project=alpha, name=f"alpha/r{index:02d}")
        Tag.objects.create(repository=repository, name="1", digest=SHARED)
    assert count(5) == count(30)


def test_gc_start_is_one_at_a_time_and_schedule_installs_beat(api, portal_admin: User) -> None:
    assert api.post("/api/v1/system/gc").status_code == 202
    second = api.post("/api/v1/system/gc")
    assert second.status_code == 409
    assert second.json()["detail"] == "garbage collection is already running"
    assert api.get("/api/v1/system/gc").json()["count"] == 1

    assert api.get("/api/v1/system/gc/schedule").json()["frequency"] == "off"
    bad = api.patch("/api/v1/system/gc/schedule", {"frequency": "hourly"}, format="json")
    assert bad.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_daily_gc_schedule_enables_the_beat_task(transactional_db: Any) -> None:
    admin = User.objects.create_user("gc-admin", password="x", is_portal_admin=True)
    from portal.core.audit import Actor

    services.update_gc_schedule(Actor(admin), "daily", timezone.datetime(2000, 1, 1, 3, 30).time())
    task = PeriodicTask.objects.get(name="registry garbage collection")
    assert task.enabled and task.task == "registries.scheduled_gc"
    assert (task.crontab.hour, task.crontab.minute) == ("3", "30")
    services.update_gc_schedule(Actor(admin), "off")
    assert not PeriodicTask.objects.get(name="registry garbage collection").enabled
