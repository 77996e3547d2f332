"""The one role matrix: `can(user, action, project)` answers every permission question."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet, Value

from projects.models import ROLE_RANK, Membership, Project, Role

if TYPE_CHECKING:
    from portal.models import User

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


def is_portal_admin(user: User | None) -> bool:
    """True for a Management Portal administrator: by their own role or one of their groups'."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    cached = getattr(user, "_wharf_portal_admin", None)
    if cached is None:
        cached = user.is_portal_admin or user.is_superuser or user.wharf_groups.filter(is_portal_admin=True).exists()
        user._wharf_portal_admin = cached
    return cached


def _member_filter(user: User, prefix: str = "") -> Q:
    """Memberships held by the user directly or through one of their groups."""
    return Q(**{f"{prefix}user": user}) | Q(**{f"{prefix}group__members": user})


def effective_role(user: User | None, project: Project) -> Role | None:
    """The highest of the user's own role and their groups' roles in the project, or None."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    roles = Membership.objects.filter(_member_filter(user), project=project).values_list("role", flat=True)
    best = max(roles, key=lambda role: ROLE_RANK[Role(role)], default=None)
    return Role(best) if best else None


def roles_by_project(user: User | None) -> dict[int, Role]:
    """The user's effective role in every project they belong to, in one query."""
    if user is None or not user.is_authenticated or not user.is_active:
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
    if project.public and action in PUBLIC_ACTIONS and user is not None and user.is_authenticated:
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
    if user is None or not user.is_authenticated or not user.is_active:
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


def registry_actions(user: User | None, project: Project) -> set[str]:
    """The registry actions (pull, push, delete) the user may take on the project's repositories.

    The one place where anonymous access meets the matrix: anyone, anonymous included, may pull
    from a public project; everything else follows the project actions of can(). Token requests
    are frequent, so the user's roles in the project and a portal-admin role carried by one of
    their groups come back in a single query.
    """
    granted = {"pull"} if project.public else set()
    if user is None or not user.is_authenticated or not user.is_active:
        return granted
    if user.is_portal_admin or user.is_superuser:
        return set(REGISTRY_ACTIONS)
    # order_by(): SQLite refuses ORDER BY inside the parts of a UNION.
    roles = Membership.objects.filter(_member_filter(user), project=project).order_by().values_list("role", flat=True)
    admin_groups = (
        user.wharf_groups.filter(is_portal_admin=True)
        .order_by()
        .annotate(mark=Value(_PORTAL_ADMIN_MARK))
        .values_list("mark", flat=True)
    )
    found = set(roles.union(admin_groups, all=True))
    if _PORTAL_ADMIN_MARK in found:
        return set(REGISTRY_ACTIONS)
    rank = max((ROLE_RANK[Role(role)] for role in found), default=0)
    granted |= {registry for registry, action in REGISTRY_ACTIONS.items() if rank >= ROLE_RANK[PROJECT_ACTIONS[action]]}
    return granted


# Stands for "a group makes this user a portal admin" among the role values of registry_actions' query.
_PORTAL_ADMIN_MARK = "portal-admin"
