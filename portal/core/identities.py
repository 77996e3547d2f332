"""The Users & Groups search: known users and groups merged with directory entries that never logged in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Q

from portal.core import directory, permissions
from portal.core.errors import RemoteUnreachable
from portal.core.filters import UserFilterSet
from portal.core.models import Group, User

LIMIT = 100

# The Users & Groups sort keys: how each orders known users and known groups in the database, and the rows of a page
# (users, groups and directory-only entries together). The name breaks ties.
SORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "name": (("username",), ("name",), "name"),
    "full_name": (("first_name", "last_name"), ("name",), "full_name"),
    "email": (("email",), ("name",), "email"),
    "type": ((), (), "kind"),
    "source": (("source",), ("source",), "source"),
    "admin": (("is_portal_admin",), ("is_portal_admin",), "is_portal_admin"),
}


@dataclass
class Identity:
    """One row of the Users & Groups table."""

    kind: str
    name: str
    full_name: str = ""
    email: str = ""
    source: str = "local"
    known: bool = True
    is_active: bool = True
    is_portal_admin: bool = False
    projects: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data."""
        return asdict(self)


@dataclass
class IdentityResults:
    """Search results, with a warning when the directory could not be asked."""

    entries: list[Identity]
    warning: str = ""
    capped: bool = False  # more known users or groups match than LIMIT shows


def project_roles(memberships: Iterable[Any]) -> list[dict[str, str]]:
    """A user's or group's project memberships as `{project, role}` pairs (the projects app keeps them)."""
    return [{"project": m.project.name, "role": m.role} for m in memberships]


@dataclass(frozen=True)
class Disclosure:
    """What a caller may read of other users: portal admins everything; anyone else the roles held in projects
    they can see, and the email of users who belong to a project they manage (whom they may be adding as members).

    Names and display names are for everyone who may look users up: that is how a project admin finds a member.
    """

    everything: bool
    viewer_id: int | None = None
    visible: frozenset[int] = frozenset()
    managed: frozenset[int] = frozenset()

    @classmethod
    def to(cls, viewer: User | None) -> Disclosure:
        """What `viewer` may read (two queries for anyone but a portal admin)."""
        if permissions.is_portal_admin(viewer):
            return cls(everything=True)
        return cls(
            everything=False,
            viewer_id=viewer.pk if viewer is not None else None,
            visible=frozenset(permissions.visible_projects(viewer).values_list("pk", flat=True)),
            managed=frozenset(permissions.visible_projects(viewer, "manage_members").values_list("pk", flat=True)),
        )

    def roles(self, memberships: Iterable[Any]) -> list[dict[str, str]]:
        """project_roles() of the memberships in projects the caller can see."""
        return project_roles(m for m in memberships if self.everything or m.project_id in self.visible)

    def email(self, user: User, memberships: Iterable[Any]) -> str:
        """The user's email when the caller may read it, else an empty string."""
        shared = any(m.project_id in self.managed for m in memberships)
        return user.email if self.everything or user.pk == self.viewer_id or shared else ""


def sort_key(sort: str) -> str:
    """`sort` when it is one of SORTS (`-` reverses), else an empty string (the default order)."""
    return sort if sort.removeprefix("-") in SORTS else ""


def search_identities(
    query: str, viewer: User | None, page: int = 1, per_page: int | None = None, sort: str = ""
) -> IdentityResults:
    """Users and groups matching the text: known ones first, then directory-only entries; what of them `viewer`
    may read (see Disclosure).

    An empty text lists the users and groups the portal knows (up to LIMIT of each), without asking the directory.
    With `per_page`, only that page of known users and of known groups (one extra row of each tells whether more
    follow, so no COUNT); the directory's entries come on page 1 only. With `sort` (a key of SORTS, `-` reverses)
    the users and the groups are each taken in that order, and the page's rows are shown in it.
    """
    disclosure = Disclosure.to(viewer)
    limit = per_page or LIMIT
    start = (page - 1) * limit
    memberships = "membership_set__project"
    sort = sort_key(sort)
    descending = sort.startswith("-")
    user_order, group_order, _ = SORTS.get(sort.removeprefix("-"), ((), (), ""))
    direction = "-" if descending else ""
    users = UserFilterSet({"q": query}, User.objects.prefetch_related(memberships)).qs.order_by(
        *(direction + field for field in (*user_order, "username"))
    )
    groups = (
        Group.objects.filter(Q(name__icontains=query))
        .prefetch_related(memberships)
        .order_by(*(direction + field for field in (*group_order, "name")))
    )
    users, groups = list(users[start : start + limit + 1]), list(groups[start : start + limit + 1])
    capped = len(users) > limit or len(groups) > limit
    entries = [
        Identity(
            "user",
            u.username,
            u.get_full_name(),
            disclosure.email(u, u.membership_set.all()),
            u.source,
            True,
            u.is_active,
            u.is_portal_admin,
            disclosure.roles(u.membership_set.all()),
        )
        for u in users[:limit]
    ]
    entries += [
        Identity(
            "group",
            g.name,
            g.name,
            "",
            g.source,
            True,
            True,
            g.is_portal_admin,
            disclosure.roles(g.membership_set.all()),
        )
        for g in groups[:limit]
    ]
    warning = ""
    try:
        found = directory.search(query) if query.strip() and page == 1 else []
    except RemoteUnreachable as exc:
        found, warning = [], f"Directory not searched: {exc.message}"
    known = {(e.kind, e.name.lower()) for e in entries} | _known_names(found)
    entries += [
        Identity(d.kind, d.name, d.full_name, d.email if disclosure.everything else "", "ldap", False)
        for d in found
        if (d.kind, d.name.lower()) not in known
    ]
    if sort:
        attribute = SORTS[sort.removeprefix("-")][2]
        entries.sort(key=lambda e: (_sortable(getattr(e, attribute)), e.name.lower()), reverse=descending)
    return IdentityResults(entries, warning, capped)


def _sortable(value: object) -> object:
    """A row's value as it sorts: text without regard to case."""
    return value.lower() if isinstance(value, str) else value


def _known_names(found: list[directory.DirectoryEntry]) -> set[tuple[str, str]]:
    """(kind, lower-case name) of the directory entries the portal already knows, in two queries."""
    users, groups = Q(pk__in=[]), Q(pk__in=[])
    for entry in found:
        if entry.kind == "user":
            users |= Q(username__iexact=entry.name)
        else:
            groups |= Q(name__iexact=entry.name)
    return {("user", name.lower()) for name in User.objects.filter(users).values_list("username", flat=True)} | {
        ("group", name.lower()) for name in Group.objects.filter(groups).values_list("name", flat=True)
    }
