"""The role check reads a user's roles once per request, and a change of memberships is seen at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.core.audit import Actor
from portal.core.models import Group, User
from projects import services
from projects.models import Membership, Project, Role
from projects.roles import can, effective_role, registry_actions, visible_projects
from tests.conftest import client_for, logged_in

MEMBERSHIP_TABLE = Membership._meta.db_table


def membership_reads(fetch) -> int:
    """How many of the request's queries read the memberships table."""
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200, response.content
    return sum(MEMBERSHIP_TABLE in query["sql"] for query in captured.captured_queries)


@pytest.fixture
def developer(role_users: dict, beta: Project, group: Group) -> User:
    """alpha's developer, who also sees beta through a group."""
    user = role_users["developer"]
    group.members.add(user)
    Membership.objects.create(project=beta, group=group, role=Role.VIEWER)
    return user


@pytest.mark.parametrize(
    ("path", "reads"),
    [
        ("/projects/alpha/repositories/", 1),  # the tab asks the role for its header, its tabs and Delete
        ("/projects/alpha/", 2),  # and counts the members
        ("/projects/alpha/members/", 3),  # and counts and lists one page of the members
        ("/projects/", 2),  # and counts each listed project's members
        ("/library/repositories/", 1),
    ],
)
def test_a_page_reads_the_users_roles_once(client: Client, developer: User, path: str, reads: int) -> None:
    browser = logged_in(client, developer)
    browser.get("/")
    assert membership_reads(lambda: browser.get(path)) == reads


@pytest.mark.parametrize(
    "path", ["/api/v1/projects/alpha/repositories", "/api/v1/projects/beta/repositories", "/api/v1/repositories"]
)
def test_an_api_request_reads_the_users_roles_once(developer: User, path: str) -> None:
    assert membership_reads(lambda: client_for(developer).get(path)) == 1


def test_roles_changed_by_a_service_are_seen_by_the_next_check(
    alpha: Project, beta: Project, make_user, portal_admin: User, group: Group
) -> None:
    """One user object across changes, as a request that changes memberships and then checks again has."""
    user, admin = make_user("carol"), Actor(portal_admin)
    assert not can(user, "view", alpha) and list(visible_projects(user)) == []

    membership = services.add_member(admin, alpha, Role.DEVELOPER, user=user)
    assert can(user, "push", alpha) and not can(user, "manage_members", alpha)
    assert list(visible_projects(user)) == [alpha]

    services.change_member_role(admin, membership, Role.ADMIN)
    assert can(user, "manage_members", alpha) and can(user, "view_project_users")

    services.set_member_projects(admin, [("beta", Role.VIEWER)], user=user)
    assert not can(user, "view", alpha) and effective_role(user, beta) == Role.VIEWER

    services.add_member(admin, alpha, Role.DEVELOPER, group=group)
    assert not can(user, "view", alpha)
    group.members.add(user)
    assert effective_role(user, alpha) == Role.DEVELOPER and registry_actions(user, alpha) == {"pull", "push"}
    user.wharf_groups.remove(group)
    assert effective_role(user, alpha) is None and registry_actions(user, alpha) == set()


def test_the_project_list_counts_users_and_groups(api, alpha: Project, role_users: dict, group: Group) -> None:
    Membership.objects.create(project=alpha, group=group, role=Role.VIEWER)
    rows = {row["name"]: row["member_count"] for row in api.get("/api/v1/projects").json()["results"]}
    assert rows == {"alpha": 4, "beta": 1}
