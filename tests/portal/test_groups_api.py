"""Local groups through the API: create, replace members, delete; directory groups and non-admins refused."""

from __future__ import annotations

import pytest

from portal.core.models import AuditEvent, Group, Source
from projects.models import Membership, Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ldap_group(db) -> Group:
    """A group mirrored from the directory."""
    return Group.objects.create(name="ldap-devs", source=Source.LDAP, dn="cn=ldap-devs,ou=groups,dc=example,dc=test")


def members(group: Group) -> list[str]:
    """The group's member names, sorted."""
    return sorted(group.members.values_list("username", flat=True))


def test_admin_creates_a_group_with_members(api, make_user) -> None:
    make_user("carol")
    response = api.post("/api/v1/groups", {"name": "ops", "members": ["carol"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["members"] == ["carol"]
    assert response.json()["source"] == "local"
    event = AuditEvent.objects.get(action="create", resource_type="group")
    assert event.resource_name == "ops"


def test_duplicate_group_is_409(api, group) -> None:
    response = api.post("/api/v1/groups", {"name": "Devs"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "group 'Devs' already exists"


def test_patch_replaces_the_members(api, make_user, group) -> None:
    group.members.add(make_user("carol"))
    make_user("dave")
    make_user("erin")
    response = api.patch("/api/v1/groups/devs", {"members": ["dave", "erin"]}, format="json")
    assert response.status_code == 200, response.content
    assert sorted(response.json()["members"]) == ["dave", "erin"]
    assert members(group) == ["dave", "erin"]


def test_patch_records_an_audit_event(api, portal_admin, make_user, group) -> None:
    make_user("carol")
    api.patch("/api/v1/groups/devs", {"members": ["carol"]}, format="json")
    event = AuditEvent.objects.get(action="update", resource_type="group")
    assert event.resource_name == "devs"
    assert event.username == portal_admin.username
    assert event.detail["members"] == ["carol"]


def test_patch_with_an_empty_list_removes_every_member(api, make_user, group) -> None:
    group.members.add(make_user("carol"))
    assert api.patch("/api/v1/groups/devs", {"members": []}, format="json").status_code == 200
    assert members(group) == []


def test_patch_with_the_same_members_writes_no_audit_event(api, make_user, group) -> None:
    group.members.add(make_user("carol"))
    assert api.patch("/api/v1/groups/devs", {"members": ["carol"]}, format="json").status_code == 200
    assert not AuditEvent.objects.filter(action="update", resource_type="group").exists()


def test_patch_with_an_unknown_user_is_400(api, group) -> None:
    response = api.patch("/api/v1/groups/devs", {"members": ["ghost"]}, format="json")
    assert response.status_code == 400
    assert "ghost" in response.json()["detail"]


def test_patch_cannot_rename(api, group) -> None:
    response = api.patch("/api/v1/groups/devs", {"name": "ops", "members": []}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "A group cannot be renamed."
    assert Group.objects.filter(name="devs").exists()


def test_patch_of_a_directory_group_is_refused(api, make_user, ldap_group) -> None:
    carol = make_user("carol")
    ldap_group.members.add(carol)
    response = api.patch("/api/v1/groups/ldap-devs", {"members": []}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "Directory groups get their members from the directory."
    assert members(ldap_group) == ["carol"]
    assert not AuditEvent.objects.filter(action="update", resource_type="group").exists()


def test_patch_of_an_unknown_group_is_404(api) -> None:
    assert api.patch("/api/v1/groups/ghosts", {"members": []}, format="json").status_code == 404


def test_put_is_not_offered(api, group) -> None:
    assert api.put("/api/v1/groups/devs", {"name": "devs", "members": []}, format="json").status_code == 405


def test_delete_a_local_group_and_its_roles(api, group, alpha) -> None:
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    assert api.delete("/api/v1/groups/devs").status_code == 204
    assert not Group.objects.filter(name="devs").exists()
    assert not Membership.objects.filter(project=alpha).exists()
    event = AuditEvent.objects.get(action="delete", resource_type="group")
    assert event.resource_name == "devs"
    assert event.detail["source"] == "local"


def test_delete_a_directory_group(api, ldap_group) -> None:
    assert api.delete("/api/v1/groups/ldap-devs").status_code == 204
    assert not Group.objects.filter(name="ldap-devs").exists()
    assert AuditEvent.objects.get(action="delete", resource_type="group").detail["source"] == "ldap"


@pytest.mark.parametrize("role", ["viewer", "developer", "project_admin", "other_project_admin"])
def test_non_admins_get_403(role_users, group, role) -> None:
    client = client_for(role_users[role])
    assert client.post("/api/v1/groups", {"name": "ops"}, format="json").status_code == 403
    assert (
        client.patch("/api/v1/groups/devs", {"members": [role_users[role].username]}, format="json").status_code == 403
    )
    assert client.delete("/api/v1/groups/devs").status_code == 403
    assert Group.objects.filter(name="devs").exists()
    assert not Group.objects.filter(name="ops").exists()
    assert members(group) == []
    assert not AuditEvent.objects.filter(resource_type="group").exists()


def test_anonymous_is_refused(group) -> None:
    client = client_for(None)
    assert client.patch("/api/v1/groups/devs", {"members": []}, format="json").status_code == 401
    assert client.delete("/api/v1/groups/devs").status_code == 401
    assert Group.objects.filter(name="devs").exists()


def test_group_list_shows_each_groups_members_by_name(api, make_user, group) -> None:
    group.members.add(make_user("erin"), make_user("carol"))
    Group.objects.create(name="empty")
    listed = {row["name"]: row["members"] for row in api.get("/api/v1/groups").json()["results"]}
    assert listed == {"devs": ["carol", "erin"], "empty": []}
    assert api.get("/api/v1/groups/devs").json()["members"] == ["carol", "erin"]
