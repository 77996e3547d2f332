"""Role names in templates, all from projects.roles.role_label: one label per role on every page."""

from __future__ import annotations

from typing import Any

from django import template

from projects.models import Role
from projects.roles import PORTAL_ADMIN_LABEL, role_label

register = template.Library()


@register.simple_tag(takes_context=True)
def my_role(context: dict[str, Any], role: Role | str | None) -> str:
    """The viewer's standing in a project: their role's name, else Portal administrator, else guest."""
    return role_label(role, portal_admin=bool(context.get("is_portal_admin")))


@register.filter
def role_name(role: Role | str | None) -> str:
    """A project role's display name ('admin' is 'DevOps administrator'); '' for no role."""
    return role_label(role, portal_admin=False, guest="") if role else ""


@register.simple_tag
def portal_admin_label() -> str:
    """The name of the Management Portal administrator role."""
    return PORTAL_ADMIN_LABEL
