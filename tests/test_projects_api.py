"""Projects and members through the API: name rules, duplicates, configuration, deletion, effective roles."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.core.models import AuditEvent, Group
from projects.models import Membership, Project, Role
from projects.roles import can, effective_role
from projects.services import PROJECT_CONTENT_CHECKS
from tests.conftest import client_for


@pytest.mark.parametrize(
    "name",
    ["A", "x", "Upper", "has space", "-leading", "trailing-", "double..dot", "under_", "a/b", "é", "x" * 256],
)
def test_bad_project_name_is_refused_with_the_rule(api, name: str) -> None:
    response = api.post("/api/v1/projects", {"name": name}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert "lowercase letters and digits" in body["detail"]
    assert "name" in body["errors"]
    assert not Project.objects.filter(name=name).exists()


@pytest.mark.parametrize("name", ["ab", "web", "my-app", "team.one", "a__b", "a--b", "v1_2", "x" * 255])
def test_valid_project_names_are_accepted(api, name: str) -> None:
    response = api.post("/api/v1/projects", {"name": name, "public": True}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name
    assert response.json()["public"] is True


def test_duplicate_project_name_is_409(api, alpha) -> None:
    response = api.post("/api/v1/projects", {"name": "alpha"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "project 'alpha' already exists"


def test_project_list_searches_and_paginates(api) -> None:
    for index in range(30):
        api.post("/api/v1/projects", {"name": f"team-{index:02d}"}, format="json")
    api.post("/api/v1/projects", {"name": "other"}, format="json")
    page = api.get("/api/v1/projects?q=team&page_size=10&page=2").json()
    assert page["count"] == 30
    assert [p["name"] for p in page["results"]] == [f"team-{i:02d}" for i in range(10, 20)]
    assert page["next"] and page["previous"]


def test_project_list_query_count_does_not_grow_with_page_size(api, make_user) -> None:
    admin = make_user("lister", is_portal_admin=True)
    client = client_for(admin)
    for index in range(40):
        Project.objects.create(name=f"p-{index:02d}")

    def count(page_size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/api/v1/projects?page_size={page_size}").status_code == 200
        return len(queries)

    assert count(5) == count(40), "the project list issues queries per row"


def test_configuration_is_stored_and_shown(api, alpha) -> None:
    body = {
        "public": True,
        "content_trust": True,
        "prevent_vulnerable": True,
        "severity": "critical",
        "auto_scan": True,
    }
    response = api.patch("/api/v1/projects/alpha", body, format="json")
    assert response.status_code == 200
    shown = api.get("/api/v1/projects/alpha").json()
    assert {k: shown[k] for k in body} == body


def test_bad_severity_is_400(api, alpha) -> None:
    response = api.patch("/api/v1/projects/alpha", {"severity": "extreme"}, format="json")
    assert response.status_code == 400
    assert "severity" in response.json()["errors"]


def test_project_cannot_be_renamed(api, alpha) -> None:
    response = api.patch("/api/v1/projects/alpha", {"name": "renamed"}, format="json")
    assert response.status_code == 400
    assert Project.objects.filter(name="alpha").exists()


def test_deleting_a_project_that_holds_something_is_refused(api, alpha) -> None:
    PROJECT_CONTENT_CHECKS.append(lambda project: "2 repositories" if project.name == "alpha" else "")
    try:
        response = api.delete("/api/v1/projects/alpha")
    finally:
        PROJECT_CONTENT_CHECKS.pop()
    assert response.status_code == 409
    assert response.json()["detail"] == "project 'alpha' still holds 2 repositories"
    assert Project.objects.filter(name="alpha").exists()


def test_deleting_an_empty_project_keeps_its_log(api, alpha) -> None:
    assert api.delete("/api/v1/projects/alpha").status_code == 204
    assert not Project.objects.filter(name="alpha").exists()
    event = AuditEvent.objects.get(action="delete", resource_type="project")
    assert event.project_name == "alpha"


def test_member_added_by_name_with_role(api, alpha, make_user) -> None:
    make_user("alice")
    response = api.post("/api/v1/projects/alpha/members", {"user": "alice", "role": "developer"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["member_name"] == "alice"
    members = api.get("/api/v1/projects/alpha/members").json()["results"]
    assert [(m["member_name"], m["role"]) for m in members] == [("alice", "developer")]


def test_member_errors_are_clear(api, alpha, make_user) -> None:
    make_user("alice")
    api.post("/api/v1/projects/alpha/members", {"user": "alice", "role": "viewer"}, format="json")
    again = api.post("/api/v1/projects/alpha/members", {"user": "alice", "role": "viewer"}, format="json")
    assert again.status_code == 409
    assert again.json()["detail"] == "'alice' is already a member of project 'alpha'"
    unknown = api.post("/api/v1/projects/alpha/members", {"user": "nobody", "role": "viewer"}, format="json")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no user named 'nobody'"
    bad_role = api.post("/api/v1/projects/alpha/members", {"user": "alice", "role": "owner"}, format="json")
    assert bad_role.status_code == 400
    neither = api.post("/api/v1/projects/alpha/members", {"role": "viewer"}, format="json")
    assert neither.status_code == 400


@pytest.mark.parametrize("member", ["abc", "1.5", "-1", "\u00b2", "99999999999999999999"])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_member_id_that_is_not_one_is_404(api, alpha, method: str, member: str) -> None:
    response = getattr(api, method)(f"/api/v1/projects/alpha/members/{member}", {"role": "viewer"}, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["detail"] in ("No such member in this project.", "Not found.")


def test_effective_role_is_the_highest_of_user_and_groups(alpha, make_user) -> None:
    user = make_user("alice")
    devs = Group.objects.create(name="devs")
    admins = Group.objects.create(name="leads")
    devs.members.add(user)
    admins.members.add(user)
    Membership.objects.create(project=alpha, user=user, role=Role.VIEWER)
    assert effective_role(user, alpha) == Role.VIEWER
    assert not can(user, "push", alpha)
    Membership.objects.create(project=alpha, group=devs, role=Role.DEVELOPER)
    assert effective_role(user, alpha) == Role.DEVELOPER
    assert can(user, "push", alpha) and not can(user, "manage_members", alpha)
    Membership.objects.create(project=alpha, group=admins, role=Role.ADMIN)
    assert effective_role(user, alpha) == Role.ADMIN
    assert can(user, "manage_members", alpha)


def test_group_member_sees_project_through_the_api(alpha, make_user) -> None:
    user = make_user("alice")
    devs = Group.objects.create(name="devs")
    devs.members.add(user)
    client = client_for(user)
    assert client.get("/api/v1/projects/alpha").status_code == 404
    Membership.objects.create(project=alpha, group=devs, role=Role.DEVELOPER)
    body = client.get("/api/v1/projects/alpha").json()
    assert body["current_user_role"] == "developer"


def test_public_project_is_visible_to_any_user_but_not_editable(make_user) -> None:
    Project.objects.create(name="shared", public=True)
    client = client_for(make_user("stranger"))
    assert [p["name"] for p in client.get("/api/v1/projects").json()["results"]] == ["shared"]
    assert client.patch("/api/v1/projects/shared", {"public": False}, format="json").status_code == 403


def test_assign_projects_to_a_user_in_one_call(api, alpha, beta, make_user) -> None:
    make_user("alice")
    roles = [{"project": "alpha", "role": "admin"}, {"project": "beta", "role": "viewer"}]
    response = api.put("/api/v1/users/alice/projects", roles, format="json")
    assert response.status_code == 200
    assert sorted(response.json(), key=lambda r: r["project"]) == roles
    response = api.put("/api/v1/users/alice/projects", [{"project": "beta", "role": "developer"}], format="json")
    assert response.json() == [{"project": "beta", "role": "developer"}]
    assert api.get("/api/v1/users/alice").json()["projects"] == [{"project": "beta", "role": "developer"}]


def test_assign_projects_refuses_unknown_project_and_changes_nothing(api, alpha, make_user) -> None:
    make_user("alice")
    roles = [{"project": "alpha", "role": "admin"}, {"project": "missing", "role": "viewer"}]
    response = api.put("/api/v1/users/alice/projects", roles, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "no project named 'missing'"
    assert not Membership.objects.filter(user__username="alice").exists()
