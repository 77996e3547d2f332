"""The one role matrix: `can(user, action, project)` answers every permission question."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save

from portal.core.models import Group
from portal.core.permissions import PORTAL_ADMIN_LABEL, is_portal_admin
from portal.core.permissions import is_active_user as _is_active_user
from projects.models import ROLE_RANK, Membership, Project, Role

if TYPE_CHECKING:
    from portal.core.models import User

# Project actions and the weakest role that may take each one.
PROJECT_ACTIONS: dict[str, Role] = {
    "view": Role.VIEWER,  # see the project, its members, configuration and logs
    "pull": Role.VIEWER,
    "push": Role.DEVELOPER,
    "provision": Role.DEVELOPER,
    "operate_containers": Role.DEVELOPER,
    "delete_artifact": Role.ADMIN,
    "manage_members": Role.ADMIN,
    "manage_settings": Role.ADMIN,
    "manage_registries": Role.ADMIN,
    "manage_hosts": Role.ADMIN,
    "replicate": Role.ADMIN,  # see the project's replication rules and executions, run them
    "scan": Role.ADMIN,  # scan the project's images for vulnerabilities
}
# What anyone logged in may do on a public project without a role in it.
PUBLIC_ACTIONS = frozenset({"view", "pull"})
# Actions only a Management Portal administrator may take.
SYSTEM_ACTIONS = frozenset(
    {"create_project", "delete_project", "manage_users", "manage_system", "view_all_logs", "manage_credentials"}
)


# Bumped whenever a membership or a group's members change in this process: a user's roles remembered
# before the change are then read again, so a service that adds a member and checks a permission next (or a
# test that does) never sees the roles as they were. Other processes' changes reach a request through its own
# user object, which lives for that request only (the memo is kept on it, as is_portal_admin's is).
_roles_generation = 0


def forget_roles(**_: object) -> None:
    """Make every remembered set of roles in this process stale (memberships or group members changed)."""
    global _roles_generation
    _roles_generation += 1


post_save.connect(forget_roles, sender=Membership, dispatch_uid="roles-membership-saved")
post_delete.connect(forget_roles, sender=Membership, dispatch_uid="roles-membership-deleted")
m2m_changed.connect(forget_roles, sender=Group.members.through, dispatch_uid="roles-group-members")


def _roles(user: User) -> dict[int, Role]:
    """The user's best role in every project they belong to: one query per request, remembered on the user."""
    remembered = getattr(user, "_wharf_roles", None)
    if remembered is not None and remembered[0] == _roles_generation:
        return remembered[1]
    generation = _roles_generation
    best: dict[int, Role] = {}
    for project_id, role in _membership_rows(user):
        if project_id not in best or ROLE_RANK[Role(role)] > ROLE_RANK[best[project_id]]:
            best[project_id] = Role(role)
    user._wharf_roles = (generation, best)
    return best


def _membership_rows(user: User) -> QuerySet[Membership]:
    """(project id, role) of the user's own memberships and of their groups'.

    Two index lookups joined by UNION ALL (membership.user_id = X; membership.group_id IN the user's groups):
    an OR of the two across a LEFT JOIN of the groups can use neither index and reads every membership.
    """
    own = Membership.objects.filter(user=user).order_by().values_list("project_id", "role")
    groups = Group.members.through.objects.filter(user=user).values("group_id")
    through_groups = Membership.objects.filter(group__in=groups).order_by().values_list("project_id", "role")
    return own.union(through_groups, all=True)


# The name of a guest's standing in a public project; Role's labels name the project roles, and
# PORTAL_ADMIN_LABEL the system role.
GUEST_LABEL = "Guest (public project)"


def role_label(role: Role | str | None, *, portal_admin: bool, guest: str = GUEST_LABEL) -> str:
    """The one name every page shows for a user's standing in a project: their project role's display name, else
    Portal administrator (who sees every project), else a guest of a public project."""
    if role in Role.values:
        return Role(role).label
    return PORTAL_ADMIN_LABEL if portal_admin else guest


def effective_role(user: User | None, project: Project) -> Role | None:
    """The highest of the user's own role and their groups' roles in the project, or None."""
    if not _is_active_user(user):
        return None
    return _roles(user).get(project.pk)


def roles_by_project(user: User | None) -> dict[int, Role]:
    """The user's effective role in every project they belong to (one query per request)."""
    if not _is_active_user(user):
        return {}
    return dict(_roles(user))


def can(user: User | None, action: str, project: Project | None = None) -> bool:
    """Whether the user may take the action (on the project, for project actions)."""
    if is_portal_admin(user):
        return True
    if action in SYSTEM_ACTIONS:
        return False
    if action == "view_project_users":
        # Project admins look users up to add them as members.
        return user is not None and user.is_authenticated and _admins_any_project(user)
    if action not in PROJECT_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if project is None:
        return False
    if project.public and action in PUBLIC_ACTIONS and _is_active_user(user):
        return True
    role = effective_role(user, project)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[PROJECT_ACTIONS[action]]


def _admins_any_project(user: User) -> bool:
    """True when the user is a DevOps administrator of at least one project."""
    return Role.ADMIN in _roles(user).values()


def restrict_projects(queryset: QuerySet[Project], user: User | None, action: str = "view") -> QuerySet[Project]:
    """Narrow a project queryset to those where the user may take the action."""
    if is_portal_admin(user):
        return queryset
    if not _is_active_user(user):
        return queryset.none()
    minimum = ROLE_RANK[PROJECT_ACTIONS[action]]
    # The ids themselves rather than a subquery: the roles are already read for this request, and the
    # primary key index finds a handful of projects at once.
    allowed = Q(pk__in=[project_id for project_id, role in _roles(user).items() if ROLE_RANK[role] >= minimum])
    if action in PUBLIC_ACTIONS:
        allowed |= Q(public=True)
    return queryset.filter(allowed)


# Registry actions in a token scope and the project action each one needs.
REGISTRY_ACTIONS: dict[str, str] = {"pull": "pull", "push": "push", "delete": "delete_artifact"}


def visible_projects(user: User | None, action: str = "view") -> QuerySet[Project]:
    """The projects on which the user may take the action."""
    return restrict_projects(Project.objects.all(), user, action)


def registry_actions(user: User | None, project: Project) -> set[str]:
    """The registry actions (pull, push, delete) the user may take on the project's repositories.

    The one place where anonymous access meets the matrix: anyone, anonymous included, may pull
    from a public project; everything else follows the project actions of can().
    """
    if not _is_active_user(user):
        return _registry_actions_granted(user, project.public, (), admin_by_group=False)
    role = effective_role(user, project)
    return _registry_actions_granted(user, project.public, [role] if role else [], admin_by_group=is_portal_admin(user))


def registry_actions_by_name(user: User | None, project_name: str) -> set[str] | None:
    """registry_actions() on the project of that name, None when there is no such project.

    The token service asks on every push and pull, so the project, the user's roles in it and a
    portal-admin role carried by one of their groups come back in a single query.
    """
    user_id = user.pk if _is_active_user(user) else None
    with connection.cursor() as cursor:
        cursor.execute(_project_roles_sql(), {"user": user_id, "project": project_name})
        rows = cursor.fetchall()
    if not rows:
        return None
    roles = [role for _, role, _ in rows if role is not None]
    return _registry_actions_granted(user, bool(rows[0][0]), roles, admin_by_group=any(row[2] for row in rows))


def _registry_actions_granted(user: User | None, public: bool, roles: Iterable[str], admin_by_group: bool) -> set[str]:
    """The matrix for registry actions, given the project's visibility and the user's roles in it."""
    granted = {"pull"} if public else set()
    if not _is_active_user(user):
        return granted
    if user.is_portal_admin or user.is_superuser or admin_by_group:
        return set(REGISTRY_ACTIONS)
    rank = max((ROLE_RANK[Role(role)] for role in roles), default=0)
    granted |= {registry for registry, action in REGISTRY_ACTIONS.items() if rank >= ROLE_RANK[PROJECT_ACTIONS[action]]}
    return granted


@functools.cache
def _project_roles_sql() -> str:
    """The project's rows, one per (group of the user, role the user holds in the project directly or by a group).

    Each row carries the project's visibility, a role (NULL for none) and whether the group makes the user a
    portal admin. The user's groups come from the (user) index of group members; their memberships in the
    project from the (user) and (group) indexes of memberships, which the database combines for the OR (a
    bitmap OR on PostgreSQL, a multi-index OR on SQLite), so the cost does not grow with the project's members.
    Plain SQL rather than the ORM: compiling the equivalent queryset cost more than the rest of a token
    request (see bench/token_service.py).
    """
    members = Group._meta.get_field("members")
    tables = {
        "project": Project._meta.db_table,
        "membership": Membership._meta.db_table,
        "group": Group._meta.db_table,
        "group_members": members.m2m_db_table(),
        "member_group": members.m2m_column_name(),
        "member_user": members.m2m_reverse_name(),
    }
    return """
        SELECT p.public, m.role, g.is_portal_admin
        FROM {project} p
        LEFT JOIN ({group_members} gm JOIN {group} g ON g.id = gm.{member_group}) ON gm.{member_user} = %(user)s
        LEFT JOIN {membership} m ON m.project_id = p.id AND (m.user_id = %(user)s OR m.group_id = gm.{member_group})
        WHERE p.name = %(project)s
    """.format(**tables)
