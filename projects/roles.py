"""The one role matrix: `can(user, action, project)` answers every permission question."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from django.db import connection
from django.db.models import Q, QuerySet

from portal.core.permissions import is_active_user as _is_active_user
from portal.core.permissions import is_portal_admin
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
}
# What anyone logged in may do on a public project without a role in it.
PUBLIC_ACTIONS = frozenset({"view", "pull"})
# Actions only a Management Portal administrator may take.
SYSTEM_ACTIONS = frozenset(
    {"create_project", "delete_project", "manage_users", "manage_system", "view_all_logs", "manage_credentials"}
)


def _member_filter(user: User, prefix: str = "") -> Q:
    """Memberships held by the user directly or through one of their groups."""
    return Q(**{f"{prefix}user": user}) | Q(**{f"{prefix}group__members": user})


def effective_role(user: User | None, project: Project) -> Role | None:
    """The highest of the user's own role and their groups' roles in the project, or None."""
    if not _is_active_user(user):
        return None
    roles = Membership.objects.filter(_member_filter(user), project=project).values_list("role", flat=True)
    best = max(roles, key=lambda role: ROLE_RANK[Role(role)], default=None)
    return Role(best) if best else None


def roles_by_project(user: User | None) -> dict[int, Role]:
    """The user's effective role in every project they belong to, in one query."""
    if not _is_active_user(user):
        return {}
    best: dict[int, Role] = {}
    for project_id, role in Membership.objects.filter(_member_filter(user)).values_list("project_id", "role"):
        if project_id not in best or ROLE_RANK[Role(role)] > ROLE_RANK[best[project_id]]:
            best[project_id] = Role(role)
    return best


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
    return Membership.objects.filter(_member_filter(user), role=Role.ADMIN).exists()


def restrict_projects(queryset: QuerySet[Project], user: User | None, action: str = "view") -> QuerySet[Project]:
    """Narrow a project queryset to those where the user may take the action."""
    if is_portal_admin(user):
        return queryset
    if not _is_active_user(user):
        return queryset.none()
    minimum = ROLE_RANK[PROJECT_ACTIONS[action]]
    roles = [role for role, rank in ROLE_RANK.items() if rank >= minimum]
    member_of = Membership.objects.filter(_member_filter(user), role__in=roles).values("project_id")
    allowed = Q(pk__in=member_of)
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
    return _registry_actions_where(user, "id", project.pk) or set()


def registry_actions_by_name(user: User | None, project_name: str) -> set[str] | None:
    """registry_actions() on the project of that name, None when there is no such project.

    The token service asks on every push and pull, so the project, the user's roles in it and a
    portal-admin role carried by one of their groups come back in a single query.
    """
    return _registry_actions_where(user, "name", project_name)


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


def _registry_actions_where(user: User | None, column: Literal["id", "name"], value: object) -> set[str] | None:
    """registry_actions() on the project whose `column` (id or name) is `value`; None when there is none."""
    user_id = user.pk if _is_active_user(user) else None
    with connection.cursor() as cursor:
        cursor.execute(_project_roles_sql(column), [user_id, user_id, user_id, value])
        rows = cursor.fetchall()
    if not rows:
        return None
    roles = [role for _, role, _ in rows if role is not None]
    return _registry_actions_granted(user, bool(rows[0][0]), roles, admin_by_group=bool(rows[0][2]))


@functools.cache
def _project_roles_sql(column: Literal["id", "name"]) -> str:
    """One row per role the user holds in the project (directly or through a group; one NULL row for none).

    Each row carries the project's visibility and whether one of the user's groups makes them a
    portal admin. Plain SQL rather than the ORM: compiling the equivalent queryset cost more than
    the rest of a token request (see bench/token_service.py).
    """
    if column not in ("id", "name"):
        raise ValueError(f"projects are found by id or name, not {column!r}")
    group = Membership._meta.get_field("group").related_model
    members = group._meta.get_field("members")
    tables = {
        "project": Project._meta.db_table,
        "membership": Membership._meta.db_table,
        "group": group._meta.db_table,
        "group_members": members.m2m_db_table(),
        "member_group": members.m2m_column_name(),
        "member_user": members.m2m_reverse_name(),
    }
    return """
        SELECT p.public, m.role, EXISTS (
            SELECT 1 FROM {group} g JOIN {group_members} gm ON gm.{member_group} = g.id
            WHERE gm.{member_user} = %s AND g.is_portal_admin
        )
        FROM {project} p
        LEFT JOIN {membership} m ON m.project_id = p.id AND (
            m.user_id = %s
            OR m.group_id IN (SELECT {member_group} FROM {group_members} WHERE {member_user} = %s)
        )
        WHERE p.{column} = %s
    """.format(column=column, **tables)
