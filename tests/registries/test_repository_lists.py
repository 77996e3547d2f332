"""Repository lists at size: tag counts follow pushes and deletes; a big project's list costs a small one's queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.core.models import User
from projects.models import Project
from registries import events, services
from registries.models import Repository, Tag
from tests.conftest import client_for, logged_in
from tests.registries.test_api import FakeRegistry
from tests.registries.test_events import T0, event, post

SHARED, OTHER = "sha256:" + "a" * 64, "sha256:" + "c" * 64


@pytest.fixture
def secret(settings) -> str:
    settings.REGISTRY_NOTIFY_SECRET = "test-notify-secret"
    return "test-notify-secret"


@pytest.fixture(autouse=True)
def _sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image sizes come from the registry; there is none here."""
    monkeypatch.setattr(events, "_image_size", lambda event: 1234)


def tag_counts(user: User, path: str = "/api/v1/projects/alpha/repositories") -> dict[str, int]:
    """Repository name -> tag count, as the list answers it."""
    return {row["name"]: row["tag_count"] for row in client_for(user).get(path).json()["results"]}


def test_tag_counts_follow_pushes_and_deletes(
    client: Client, secret: str, role_users: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = role_users["viewer"]
    post(client, secret, event("push", tag="1.0", digest=SHARED), event("push", tag="latest", digest=SHARED))
    post(client, secret, event("push", tag="2.0", digest=OTHER), event("push", repository="alpha/db", tag="15"))
    assert tag_counts(viewer) == {"alpha/app": 3, "alpha/db": 1}
    assert tag_counts(viewer, "/api/v1/repositories") == {"alpha/app": 3, "alpha/db": 1}

    # A delete of a digest takes every tag on it; the count drops at once.
    post(client, secret, event("delete", tag="", digest=SHARED, at=T0 + timedelta(minutes=1)))
    assert tag_counts(viewer) == {"alpha/app": 1, "alpha/db": 1}

    # A pushed tag again, then one deleted through the portal (the registry is asked, then the row goes).
    post(client, secret, event("push", tag="3.0", digest=SHARED, at=T0 + timedelta(minutes=2)))
    registry = FakeRegistry()
    registry.tags_by_repo["alpha/app"] = {"2.0": OTHER, "3.0": SHARED}
    monkeypatch.setattr(services, "RegistryClient", lambda: registry)
    deleted = client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/repositories/app/tags/2.0")
    assert deleted.status_code == 204, deleted.content
    assert tag_counts(viewer) == {"alpha/app": 1, "alpha/db": 1}
    page = logged_in(Client(), viewer).get("/projects/alpha/repositories/")
    assert [(r.name, r.tag_count) for r in page.context["page"]] == [("alpha/app", 1), ("alpha/db", 1)]


def fill(project: Project, repositories: int, tags: int) -> None:
    """Give the project that many repositories, each with that many tags."""
    rows = Repository.objects.bulk_create(
        Repository(project=project, name=f"{project.name}/app{index:03d}") for index in range(repositories)
    )
    Tag.objects.bulk_create(
        Tag(repository=repository, name=f"v{index}", digest=f"sha256:{index:064x}")
        for repository in rows
        for index in range(tags)
    )


def queries(fetch) -> tuple[int, object]:
    """How many SQL queries the request made, and its response."""
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200
    return len(captured.captured_queries), response


@pytest.mark.parametrize("member", ["developer", "portal_admin"])
def test_a_big_projects_repository_list_costs_the_queries_of_a_small_ones(
    role_users: dict, alpha: Project, beta: Project, member: str
) -> None:
    user = role_users[member]
    beta.memberships.create(user=user, role="developer") if member != "portal_admin" else None
    fill(alpha, repositories=40, tags=30)
    fill(beta, repositories=1, tags=1)
    api, browser = client_for(user), logged_in(Client(), user)
    browser.get("/")  # the session's first request writes what later ones do not

    big, response = queries(lambda: api.get("/api/v1/projects/alpha/repositories"))
    assert big == queries(lambda: api.get("/api/v1/projects/beta/repositories"))[0]
    assert response.json()["count"] == 40
    assert {row["tag_count"] for row in response.json()["results"]} == {30}

    big, response = queries(lambda: browser.get("/projects/alpha/repositories/"))
    assert big == queries(lambda: browser.get("/projects/beta/repositories/"))[0]
    assert {row.tag_count for row in response.context["page"]} == {30}


def test_the_library_costs_the_same_queries_as_it_grows(role_users: dict, alpha: Project, beta: Project) -> None:
    viewer = role_users["viewer"]
    fill(alpha, repositories=1, tags=1)
    api, browser = client_for(viewer), logged_in(Client(), viewer)
    browser.get("/")  # the session's first request writes what later ones do not
    before = [
        queries(lambda: api.get("/api/v1/repositories"))[0],
        queries(lambda: browser.get("/library/repositories/"))[0],
    ]
    fill(Project.objects.create(name="gamma", public=True), repositories=40, tags=30)
    fill(beta, repositories=40, tags=1)
    count, response = queries(lambda: api.get("/api/v1/repositories"))
    after = [count, queries(lambda: browser.get("/library/repositories/"))[0]]
    assert after == before
    assert response.json()["count"] == 41  # alpha's and the public project's, not beta's
