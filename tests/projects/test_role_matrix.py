"""The role matrix asked three ways must answer alike: can() (the ORM), restrict() (querysets) and the
token service's plain-SQL registry grant, for every kind of user x every action x public and private."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AnonymousUser

from hosts.models import Container, ContainerHost
from portal.core.models import Group, User
from projects.models import Membership, Project, Role
from projects.roles import (
    PROJECT_ACTIONS,
    REGISTRY_ACTIONS,
    can,
    registry_actions,
    registry_actions_by_name,
    restrict_projects,
)
from registries.models import Repository

pytestmark = pytest.mark.django_db


def _member(role: Role) -> Callable[[Project], User]:
    def make(project: Project) -> User:
        user = User.objects.create_user(f"direct-{role.value}")
        Membership.objects.create(project=project, user=user, role=role)
        return user

    return make


def _group_member(role: Role) -> Callable[[Project], User]:
    def make(project: Project) -> User:
        user = User.objects.create_user(f"grouped-{role.value}")
        group = Group.objects.create(name=f"group-{role.value}")
        group.members.add(user)
        Membership.objects.create(project=project, group=group, role=role)
        return user

    return make


def _viewer_with_admin_group(project: Project) -> User:
    user = _member(Role.VIEWER)(project)
    group = Group.objects.create(name="admins-of-it")
    group.members.add(user)
    Membership.objects.create(project=project, group=group, role=Role.ADMIN)
    return user


def _inactive_admin(project: Project) -> User:
    user = _member(Role.ADMIN)(project)
    user.is_active = False
    user.save()
    return user


def _portal_admin_by_group(project: Project) -> User:
    user = User.objects.create_user("admin-by-group")
    group = Group.objects.create(name="portal-admins", is_portal_admin=True)
    group.members.add(user)
    return user


PEOPLE: dict[str, Callable[[Project], User | None]] = {
    "anonymous": lambda project: None,
    "logged in, no role": lambda project: User.objects.create_user("nobody"),
    "viewer": _member(Role.VIEWER),
    "developer": _member(Role.DEVELOPER),
    "project admin": _member(Role.ADMIN),
    "viewer by group": _group_member(Role.VIEWER),
    "developer by group": _group_member(Role.DEVELOPER),
    "project admin by group": _group_member(Role.ADMIN),
    "viewer, and admin by group": _viewer_with_admin_group,
    "inactive project admin": _inactive_admin,
    "portal admin": lambda project: User.objects.create_user("root", is_portal_admin=True),
    "portal admin by group": _portal_admin_by_group,
}


@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
@pytest.mark.parametrize("person", list(PEOPLE))
def test_orm_restrict_and_token_sql_agree(person: str, public: bool) -> None:
    project = Project.objects.create(name="alpha", public=public)
    other = Project.objects.create(name="other")
    user = PEOPLE[person](project)

    for action in PROJECT_ACTIONS:
        allowed = can(user, action, project)
        restricted = restrict_projects(Project.objects.all(), user, action)
        assert (project in restricted) == allowed, f"{person} / {action}: restrict and can() disagree"
        assert (other in restricted) == can(user, action, other), f"{person} / {action}: a project they have no role in"

    expected = {registry for registry, action in REGISTRY_ACTIONS.items() if can(user, action, project)}
    if (user is None or not user.is_active) and public:
        expected.add("pull")  # docker pull of a public project needs no login: a disabled user is anonymous
    assert registry_actions(user, project) == expected, f"{person}: the SQL grant disagrees with can()"
    assert registry_actions_by_name(user, "alpha") == expected
    assert registry_actions_by_name(AnonymousUser() if user is None else user, "missing") is None


@pytest.mark.parametrize("person", ["viewer", "developer", "logged in, no role", "portal admin"])
def test_every_restricted_queryset_follows_its_project(person: str) -> None:
    project = Project.objects.create(name="alpha")
    hidden = Project.objects.create(name="beta")
    user = PEOPLE[person](project)
    for each in (project, hidden):
        Repository.objects.create(project=each, name=f"{each.name}/app")
        host = ContainerHost.objects.create(
            project=each, name=f"{each.name}-host", url=f"tcp://127.0.0.1:{2375 + each.pk}"
        )
        Container.objects.create(host=host, name="web", container_id=f"{each.pk:064d}")

    visible = {p.name for p in Project.objects.all() if can(user, "view", p)}
    pullable = {p.name for p in Project.objects.all() if can(user, "pull", p)}
    assert {r.project.name for r in Repository.objects.restrict(user)} == pullable
    assert {h.project.name for h in ContainerHost.objects.restrict(user)} == visible
    assert {c.host.project.name for c in Container.objects.restrict(user)} == visible
    operable = {p.name for p in Project.objects.all() if can(user, "operate_containers", p)}
    assert {c.host.project.name for c in Container.objects.restrict(user, "operate_containers")} == operable
