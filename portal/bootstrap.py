"""First-start setup, safe to run at every start: PKI, settings, the admin, default-project, schedules."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from django.db import transaction

from portal.core.audit import Actor, record
from portal.core.certificates import ensure_pki
from portal.core.models import SystemSettings, User
from portal.core.schedules import install_schedules
from projects.models import Membership, Project, Role

DEFAULT_PROJECT = "default-project"
# The OVA's example users: one per role, all on default-project.
EXAMPLE_USERS = {
    "vic-cloud-admin": None,
    "vic-devops-admin": Role.ADMIN,
    "vic-developer": Role.DEVELOPER,
    "vic-viewer": Role.VIEWER,
}


@dataclass
class BootstrapResult:
    """Passwords generated in this run: printed once, never stored in clear."""

    admin_password: str | None = None
    example_passwords: dict[str, str] = field(default_factory=dict)


@transaction.atomic
def bootstrap(example_users: bool = False) -> BootstrapResult:
    """Make what a first start needs; a second run changes nothing."""
    ensure_pki()
    SystemSettings.load()
    result = BootstrapResult()
    actor = Actor.system("bootstrap")
    if not User.objects.filter(username="admin").exists():
        password = os.environ.get("WHARF_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_user("admin", password=password, is_portal_admin=True, first_name="Portal administrator")
        record(actor, "create", "user", "admin", admin=True)
        if not os.environ.get("WHARF_ADMIN_PASSWORD"):
            result.admin_password = password
    project, created = Project.objects.get_or_create(
        name=DEFAULT_PROJECT, defaults={"public": True, "created_by": "admin"}
    )
    if created:
        record(actor, "create", "project", DEFAULT_PROJECT, project, public=True)
    if example_users:
        result.example_passwords = _example_users(actor, project)
    install_schedules()
    return result


def _example_users(actor: Actor, project: Project) -> dict[str, str]:
    """Create the missing example users; returns the passwords of those made now."""
    made = {}
    for username, role in EXAMPLE_USERS.items():
        if User.objects.filter(username=username).exists():
            continue
        password = os.environ.get("WHARF_EXAMPLE_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_user(username, password=password, is_portal_admin=role is None)
        if role is not None:
            Membership.objects.create(project=project, user=User.objects.get(username=username), role=role)
        record(actor, "create", "user", username, example=True, role=role or "portal admin")
        made[username] = password
    return made
