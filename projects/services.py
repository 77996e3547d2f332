"""Every change of projects and memberships, with its permission check and audit event."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from portal.core.audit import Actor, record
from portal.core.bulk import Outcome, apply_each
from portal.core.errors import Conflict, Invalid, NotFound
from portal.core.models import Group, User
from portal.core.services import require
from projects.models import Membership, Project, ProjectSelection, Role, Severity, project_name_validator

PROJECT_SETTINGS = ("public", "content_trust", "prevent_vulnerable", "severity", "auto_scan")

# Things that keep a project from being deleted: each later app registers a function that
# returns a phrase such as "3 repositories" (or "" when it holds none), usually through
# register_project_content for its models.
PROJECT_CONTENT_CHECKS: list[Callable[[Project], str]] = []

# What later apps do when a project's settings change (hosts: the VCH whitelists content trust asks for):
# each is called inside the change's transaction with the actor, the project and the settings that changed.
SETTINGS_FOLLOWUPS: list[Callable[[Actor, Project, dict[str, Any]], None]] = []


def register_project_content(model: type[models.Model], one: str, many: str) -> None:
    """Keep projects holding rows of the model from being deleted, naming them as "1 <one>" or "2 <many>"."""

    def count_phrase(project: Project) -> str:
        count = model._default_manager.filter(project=project).count()
        if not count:
            return ""
        return f"{count} {one if count == 1 else many}"

    PROJECT_CONTENT_CHECKS.append(count_phrase)


def validate_project_name(name: str) -> str:
    """The name, checked against the repository-name rule; raises Invalid stating the rule."""
    try:
        if not 2 <= len(name) <= 255:
            raise ValidationError(project_name_validator.message)
        project_name_validator(name)
    except ValidationError as exc:
        raise Invalid(exc.messages[0], {"name": list(exc.messages)}) from exc
    return name


@transaction.atomic
def create_project(actor: Actor, name: str, public: bool = False, **config: Any) -> Project:
    """Create a project (portal admins only); the creator is recorded."""
    require(actor, "create_project")
    name = validate_project_name(name.strip())
    if Project.objects.filter(name=name).exists():
        raise Conflict(f"project '{name}' already exists")
    _check_config(config)
    project = Project.objects.create(name=name, public=public, created_by=actor.name, **config)
    record(actor, "create", "project", name, project, public=public)
    return project


def _check_config(config: dict[str, Any]) -> None:
    """Reject unknown settings and severities."""
    unknown = set(config) - set(PROJECT_SETTINGS)
    if unknown:
        raise Invalid(f"unknown project settings: {', '.join(sorted(unknown))}")
    if "severity" in config and config["severity"] not in Severity.values:
        raise Invalid(
            f"severity must be one of {', '.join(Severity.values)}",
            {"severity": [f"Choose one of {', '.join(Severity.values)}."]},
        )


@transaction.atomic
def update_project(actor: Actor, project: Project, **config: Any) -> Project:
    """Change a project's configuration (public, content trust, vulnerability rules, scan on push)."""
    require(actor, "manage_settings", project)
    _check_config(config)
    changed = {k: v for k, v in config.items() if getattr(project, k) != v}
    for key, value in changed.items():
        setattr(project, key, value)
    if changed:
        project.save(update_fields=list(changed))
        record(actor, "update", "project", project.name, project, **{k: str(v) for k, v in changed.items()})
        for followup in SETTINGS_FOLLOWUPS:
            followup(actor, project, changed)
    return project


@transaction.atomic
def delete_project(actor: Actor, project: Project) -> None:
    """Delete an empty project (portal admins only); refuse while it still holds anything."""
    require(actor, "delete_project")
    remaining = [phrase for check in PROJECT_CONTENT_CHECKS if (phrase := check(project))]
    if remaining:
        raise Conflict(f"project '{project.name}' still holds {', '.join(remaining)}")
    name = project.name
    project.delete()
    record(actor, "delete", "project", name, project=Project(name=name))


def _check_role(role: str) -> Role:
    """The role, or Invalid naming the choices."""
    if role not in Role.values:
        raise Invalid(
            f"role must be one of {', '.join(Role.values)}", {"role": [f"Choose one of {', '.join(Role.values)}."]}
        )
    return Role(role)


@transaction.atomic
def add_member(
    actor: Actor, project: Project, role: str, user: User | None = None, group: Group | None = None
) -> Membership:
    """Give a user or a group a role in the project."""
    require(actor, "manage_members", project)
    role = _check_role(role)
    if (user is None) == (group is None):
        raise Invalid("Give either a user or a group.")
    existing = Membership.objects.filter(project=project, user=user, group=group)
    if existing.exists():
        name = user.username if user else group.name
        raise Conflict(f"'{name}' is already a member of project '{project.name}'")
    membership = Membership.objects.create(project=project, user=user, group=group, role=role)
    record(actor, "add_member", membership.member_type, membership.member_name, project, role=role)
    return membership


@transaction.atomic
def change_member_role(actor: Actor, membership: Membership, role: str) -> Membership:
    """Change a member's role in the project."""
    require(actor, "manage_members", membership.project)
    role = _check_role(role)
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
        record(actor, "change_role", membership.member_type, membership.member_name, membership.project, role=role)
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    """Remove a user or group from the project."""
    require(actor, "manage_members", membership.project)
    membership.delete()
    record(actor, "remove_member", membership.member_type, membership.member_name, membership.project)


def remove_members(actor: Actor, memberships: Iterable[Membership]) -> list[Outcome]:
    """Remove several members, each on its own (with its own audit entry); a refusal of one keeps the others going."""
    return apply_each(memberships, lambda member: member.member_name, lambda member: remove_member(actor, member))


@transaction.atomic
def set_member_projects(
    actor: Actor, assignments: Iterable[tuple[str, str]], user: User | None = None, group: Group | None = None
) -> list[Membership]:
    """Make the user's or group's project roles exactly the given (project name, role) pairs."""
    require(actor, "manage_users")
    wanted: dict[str, Role] = {}
    for project_name, role in assignments:
        if project_name in wanted:
            raise Invalid(f"project '{project_name}' is listed twice")
        wanted[project_name] = _check_role(role)
    projects = {p.name: p for p in Project.objects.filter(name__in=wanted)}
    missing = sorted(set(wanted) - set(projects))
    if missing:
        raise NotFound(f"no project named '{missing[0]}'")
    current = {m.project.name: m for m in Membership.objects.filter(user=user, group=group).select_related("project")}
    for name, membership in current.items():
        if name not in wanted:
            remove_member(actor, membership)
    for name, role in wanted.items():
        if name in current:
            change_member_role(actor, current[name], role)
        else:
            add_member(actor, projects[name], role, user=user, group=group)
    return list(Membership.objects.filter(user=user, group=group).select_related("project"))


def find_member(project: Project, member_id: int) -> Membership:
    """The project's membership with this id, or NotFound."""
    membership = project.memberships.select_related("user", "group").filter(pk=member_id).first()
    if membership is None:
        raise NotFound("No such member in this project.")
    return membership


def remember_selection(user: User, project: Project) -> None:
    """Keep the project the user picked in the header for their later logins (a preference: no audit event)."""
    ProjectSelection.objects.update_or_create(user=user, defaults={"project": project})
