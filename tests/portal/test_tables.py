"""Datagrid tables on the server: bulk actions validate their selection, check the role, act per item with an
audit entry each and report refusals per item; sort keys are whitelisted; the page size is kept in the URL."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core.models import AuditEvent, User
from projects.models import Membership, Project, Role
from registries.models import Repository, Tag
from tests.conftest import logged_in, page_text

pytestmark = pytest.mark.django_db
DIGEST = "sha256:" + "ab" * 32


def members_url() -> str:
    return reverse("project-members", args=["alpha"])


def member_names(text: str) -> list[str]:
    """The members of the table in the order shown."""
    return re.findall(r'<tr data-member="([^"]+)">', text)


@pytest.fixture
def viewers(alpha: Project, make_user) -> list[Membership]:
    """Three viewers of alpha: zed, amy, kim."""
    return [
        Membership.objects.create(project=alpha, user=make_user(name), role=Role.VIEWER)
        for name in ("zed", "amy", "kim")
    ]


# Members: bulk remove.


def test_project_admin_removes_two_members_with_an_audit_entry_each(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    url = reverse("member-remove", args=["alpha"])
    response = client.post(url, {"member": [viewers[0].pk, viewers[1].pk]}, follow=True)
    assert "Removed zed, amy from project &#x27;alpha&#x27;." in page_text(response)
    assert not Membership.objects.filter(pk__in=[viewers[0].pk, viewers[1].pk]).exists()
    assert Membership.objects.filter(pk=viewers[2].pk).exists()
    removed = AuditEvent.objects.filter(action="remove_member").values_list("resource_name", flat=True)
    assert sorted(removed) == ["amy", "zed"]


@pytest.mark.parametrize(
    ("came_from", "lands_on"),
    [
        ("http://testserver/projects/alpha/members/?q=a&sort=-name&page_size=10", "?q=a&sort=-name&page_size=10"),
        ("/projects/alpha/members/?sort=role", "?sort=role"),
        ("http://elsewhere.example/projects/alpha/members/?sort=role", ""),  # another site's address
        ("http://testserver/projects/beta/members/?sort=role", ""),  # another page
        ("", ""),
    ],
)
def test_a_bulk_action_returns_to_the_table_as_it_was_sorted_and_searched(
    client, role_users, viewers, came_from, lands_on
):
    client = logged_in(client, role_users["project_admin"])
    headers = {"HX-Request": "true", "HX-Current-URL": came_from} if came_from else {"HX-Request": "true"}
    response = client.post(reverse("member-remove", args=["alpha"]), {"member": [viewers[0].pk]}, headers=headers)
    assert response.status_code == 204
    assert response["HX-Redirect"] == members_url() + lands_on


def test_without_javascript_the_referer_names_the_table(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    referer = "http://testserver/projects/alpha/members/?sort=-name"
    response = client.post(reverse("member-remove", args=["alpha"]), {"member": [viewers[0].pk]}, HTTP_REFERER=referer)
    assert response.status_code == 302 and response["Location"] == members_url() + "?sort=-name"


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_only_devops_administrators_remove_members(client, role_users, viewers, role):
    response = logged_in(client, role_users[role]).post(
        reverse("member-remove", args=["alpha"]), {"member": [viewers[0].pk, viewers[1].pk]}
    )
    assert response.status_code == 403
    assert Membership.objects.filter(pk__in=[viewers[0].pk, viewers[1].pk]).count() == 2


@pytest.mark.parametrize("selection", [[], ["x"], ["", " "], ["99999999"]])
def test_removing_without_a_valid_selection_asks_for_one(client, role_users, viewers, selection):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-remove", args=["alpha"]), {"member": selection}, follow=True
    )
    assert response.status_code == 200
    assert "Select at least one member to remove." in page_text(response)
    assert Membership.objects.filter(user__username__in=["zed", "amy", "kim"]).count() == 3


def test_edit_takes_exactly_one_member(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    url = reverse("member-edit", args=["alpha"])
    two = client.get(url, {"member": [viewers[0].pk, viewers[1].pk]}, follow=True)
    assert "Select one member to edit." in page_text(two)
    none = client.get(url, follow=True)
    assert "Select a member first." in page_text(none)


# Sorting and page size.


def test_members_sort_by_name_both_ways_and_keep_the_search(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    url = reverse("project-members", args=["alpha"])
    ascending = member_names(page_text(client.get(url, {"sort": "name", "q": "m"})))
    assert ascending == ["alpha-admin", "amy", "kim"]
    descending = page_text(client.get(url, {"sort": "-name"}))
    assert member_names(descending)[:3] == ["zed", "kim", "amy"]
    assert 'aria-sort="descending"' in descending


def test_an_unknown_sort_key_shows_the_default_order(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    url = reverse("project-members", args=["alpha"])
    default = member_names(page_text(client.get(url)))
    for key in ("password", "user__password", "-nope", "name,,"):
        response = client.get(url, {"sort": key})
        assert response.status_code == 200
        assert member_names(page_text(response)) == default


def test_page_size_in_the_url_sets_the_rows_and_is_selected(client, role_users, viewers):
    client = logged_in(client, role_users["project_admin"])
    url = reverse("project-members", args=["alpha"])
    text = page_text(client.get(url, {"page_size": "2", "sort": "name"}))
    assert member_names(text) == ["alpha-admin", "alpha-developer"]
    assert '<option value="2" selected>2</option>' in text
    # The next page keeps the sort and the page size.
    assert "page_size=2" in text and "sort=name" in text and "page=2" in text


@pytest.mark.parametrize(("value", "rows"), [("x", 6), ("0", 6), ("-5", 6), ("1000", 6), ("1", 1)])
def test_a_bad_page_size_falls_back_to_the_default(client, role_users, viewers, value, rows):
    text = page_text(logged_in(client, role_users["project_admin"]).get(members_url(), {"page_size": value}))
    assert len(member_names(text)) == rows


def test_members_api_takes_the_same_search_sort_and_page_size(client, role_users, viewers):
    client = logged_in(client, role_users["viewer"])
    url = "/api/v1/projects/alpha/members"
    names = client.get(url, {"sort": "-name", "q": "m", "page_size": "2"}).json()["results"]
    assert [row["member_name"] for row in names] == ["kim", "amy"]
    assert client.get(url, {"sort": "password"}).status_code == 400


# Tags: sort in the UI and the API (same FilterSet).


@pytest.fixture
def app(alpha: Project) -> Repository:
    repository = Repository.objects.create(project=alpha, name="alpha/app")
    for name, size in (("b", 30), ("a", 10), ("c", 20)):
        Tag.objects.create(repository=repository, name=name, digest=DIGEST, size=size)
    return repository


def test_tags_sort_by_size_on_the_page_and_in_the_api(client, role_users, app):
    client = logged_in(client, role_users["viewer"])
    text = page_text(client.get(reverse("repository-detail", args=["alpha", "app"]), {"sort": "-size"}))
    assert re.findall(r'<tr data-tag="([^"]+)">', text) == ["b", "c", "a"]
    api = client.get("/api/v1/projects/alpha/repositories/app/tags", {"sort": "size", "page_size": "2"})
    assert [tag["name"] for tag in api.json()["results"]] == ["a", "c"]


def test_the_api_answers_400_to_an_unknown_sort_key(client, role_users, app):
    response = logged_in(client, role_users["viewer"]).get(
        "/api/v1/projects/alpha/repositories/app/tags", {"sort": "digest"}
    )
    assert response.status_code == 400
    assert "sort" in response.json()["errors"]


# Users & Groups: per-item outcomes.


def test_one_refused_user_does_not_undo_the_others(client, portal_admin, make_user):
    carol = make_user("carol", is_portal_admin=True)
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"),
        {"action": "unassign_admin", "selected": ["user:carol", f"user:{portal_admin.username}"]},
        follow=True,
    )
    text = page_text(response)
    assert response.status_code == 200
    assert "carol" in text and "Not done: root-admin: You cannot remove your own administrator role." in text
    carol.refresh_from_db()
    portal_admin.refresh_from_db()
    assert not carol.is_portal_admin and portal_admin.is_portal_admin


# Containers: bulk actions.


@pytest.fixture
def containers(alpha: Project) -> list[Container]:
    host = ContainerHost.objects.create(project=alpha, name="docker-1", url="http://127.0.0.1:1", state=HostState.ON)
    rows = []
    for name, state in (
        ("web", ContainerState.RUNNING),
        ("db", ContainerState.RUNNING),
        ("old", ContainerState.REMOVED),
    ):
        container_id = "" if state == ContainerState.REMOVED else name.encode().hex().ljust(64, "0")
        rows.append(
            Container.objects.create(host=host, name=name, image="busybox:1", state=state, container_id=container_id)
        )
    return rows


def test_developer_stops_two_containers_one_job_and_audit_entry_each(client, role_users, containers):
    response = logged_in(client, role_users["developer"]).post(
        reverse("container-bulk-action", args=["stop"]), {"container": [containers[0].pk, containers[1].pk]}
    )
    assert response.status_code == 302
    assert sorted(AuditEvent.objects.filter(action="stop").values_list("resource_name", flat=True)) == ["db", "web"]


def test_a_removed_container_is_refused_alone(client, role_users, containers):
    response = logged_in(client, role_users["developer"]).post(
        reverse("container-bulk-action", args=["start"]), {"container": [c.pk for c in containers]}, follow=True
    )
    text = page_text(response)
    assert "Start started for db, web." in text
    assert "Could not start: old: container &#x27;old&#x27; was removed" in text


def test_a_viewer_may_not_operate_containers(client, role_users, containers):
    response = logged_in(client, role_users["viewer"]).post(
        reverse("container-bulk-action", args=["remove"]), {"container": [containers[0].pk]}
    )
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="remove").exists()


def test_containers_of_another_project_are_not_acted_on(client, role_users, containers, beta):
    outsider = User.objects.get(username="alpha-developer")
    Membership.objects.filter(user=outsider).delete()
    Membership.objects.create(project=beta, user=outsider, role=Role.DEVELOPER)
    response = logged_in(client, outsider).post(
        reverse("container-bulk-action", args=["stop"]), {"container": [containers[0].pk]}, follow=True
    )
    assert "Select at least one container to stop." in page_text(response)
    assert not AuditEvent.objects.filter(action="stop").exists()


def test_an_unknown_bulk_action_is_a_404(client, role_users, containers):
    response = logged_in(client, role_users["developer"]).post(
        reverse("container-bulk-action", args=["explode"]), {"container": [containers[0].pk]}
    )
    assert response.status_code == 404


def test_containers_sort_by_name_descending_and_api_refuses_unknown_keys(client, role_users, containers):
    client = logged_in(client, role_users["developer"])
    text = page_text(client.get(reverse("container-list"), {"project": "alpha", "sort": "-name"}))
    assert re.findall(r'<tr data-container="([^"]+)">', text) == ["web", "db"]
    api = client.get("/api/v1/projects/alpha/containers", {"sort": "-name"})
    assert [row["name"] for row in api.json()["results"]] == ["web", "db"]
    assert client.get("/api/v1/projects/alpha/containers", {"sort": "command"}).status_code == 400
