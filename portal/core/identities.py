"""The Users & Groups search: known users and groups merged with directory entries that never logged in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Q

from portal.core import directory
from portal.core.errors import RemoteUnreachable
from portal.core.filters import UserFilterSet
from portal.core.models import Group, User

LIMIT = 100


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


def search_identities(query: str) -> IdentityResults:
    """Users and groups matching the text: known ones first, then directory-only entries.

    An empty text lists the users and groups the portal knows (up to LIMIT of each), without asking the directory.
    """
    memberships = "membership_set__project"
    users = UserFilterSet({"q": query}, User.objects.prefetch_related(memberships)).qs.order_by("username")
    groups = Group.objects.filter(Q(name__icontains=query)).prefetch_related(memberships).order_by("name")
    users, groups = list(users[: LIMIT + 1]), list(groups[: LIMIT + 1])
    capped = len(users) > LIMIT or len(groups) > LIMIT
    entries = [
        Identity(
            "user",
            u.username,
            u.get_full_name(),
            u.email,
            u.source,
            True,
            u.is_active,
            u.is_portal_admin,
            project_roles(u.membership_set.all()),
        )
        for u in users[:LIMIT]
    ]
    entries += [
        Identity(
            "group", g.name, g.name, "", g.source, True, True, g.is_portal_admin, project_roles(g.membership_set.all())
        )
        for g in groups[:LIMIT]
    ]
    warning = ""
    try:
        found = directory.search(query) if query.strip() else []
    except RemoteUnreachable as exc:
        found, warning = [], f"Directory not searched: {exc.message}"
    known = {(e.kind, e.name.lower()) for e in entries} | _known_names(found)
    entries += [
        Identity(d.kind, d.name, d.full_name, d.email, "ldap", False)
        for d in found
        if (d.kind, d.name.lower()) not in known
    ]
    return IdentityResults(entries, warning, capped)


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
