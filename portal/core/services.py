"""Every change of the administration core's state: users, groups, admin role, settings, API tokens."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.db.models.expressions import Col
from django.utils import timezone

from portal.core import directory, throttle
from portal.core.audit import Actor, record
from portal.core.errors import Conflict, Forbidden, Invalid, NotFound
from portal.core.jobs import create_job
from portal.core.models import ApiToken, AuditEvent, Group, Job, Source, SystemSettings, User
from portal.core.permissions import can, is_portal_admin

USER_FIELDS = ("email", "first_name", "last_name")
TOKEN_PREFIX = "wharf_"


def require(actor: Actor, action: str, project: Any = None) -> None:
    """Raise Forbidden unless the actor may take the action."""
    if not can(actor.user, action, project):
        raise Forbidden("You do not have permission to perform this action.")


def admin_subject(actor: Actor, kind: str, name: str) -> User | Group:
    """The user or group a portal administrator acts on; directory entries are created on first use."""
    if not is_portal_admin(actor.user):
        raise Forbidden("Only Management Portal administrators may do this.")
    return directory.ensure_user(name) if kind == "user" else directory.ensure_group(name)


def _check_password(password: str, user: User) -> None:
    """Run Django's password validators, as field errors."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise Invalid(exc.messages[0], {"password": list(exc.messages)}) from exc


def _new_local_name(model: type[User | Group], field: str, name: str) -> str:
    """The stripped name of a new local user or group; refused when empty or taken (ignoring case)."""
    kind = model.__name__.lower()
    name = name.strip()
    if not name:
        raise Invalid(f"A {kind} name is required.", {field: ["This field is required."]})
    if model.objects.filter(**{f"{field}__iexact": name}).exists():
        raise Conflict(f"{kind} '{name}' already exists")
    return name


@transaction.atomic
def create_user(actor: Actor, username: str, password: str, **fields: Any) -> User:
    """Create a local user (portal admins only)."""
    require(actor, "manage_users")
    username = _new_local_name(User, "username", username)
    user = User(username=username, source=Source.LOCAL, **{k: v for k, v in fields.items() if k in USER_FIELDS})
    _check_password(password, user)
    user.set_password(password)
    user.is_portal_admin = bool(fields.get("is_portal_admin", False))
    user.save()
    record(actor, "create", "user", username, admin=user.is_portal_admin)
    return user


@transaction.atomic
def update_user(actor: Actor, user: User, **fields: Any) -> User:
    """Change a user's name, email or active state (portal admins only)."""
    require(actor, "manage_users")
    changed = {k: v for k, v in fields.items() if k in (*USER_FIELDS, "is_active") and getattr(user, k) != v}
    if "is_active" in changed and not changed["is_active"] and user == actor.user:
        raise Invalid("You cannot disable your own account.")
    for key, value in changed.items():
        setattr(user, key, value)
    if changed:
        user.save(update_fields=list(changed))
        action = "disable" if changed.get("is_active") is False else "update"
        record(actor, action, "user", user.username, fields=sorted(changed))
    return user


@transaction.atomic
def delete_user(actor: Actor, user: User) -> None:
    """Delete a user and their memberships and tokens (portal admins only)."""
    require(actor, "manage_users")
    if user == actor.user:
        raise Invalid("You cannot delete your own account.")
    username = user.username
    user.delete()
    record(actor, "delete", "user", username)


@transaction.atomic
def change_password(actor: Actor, user: User, new_password: str, old_password: str | None = None) -> None:
    """Set a local user's password: the user with their old password, or a portal admin."""
    if user.source != Source.LOCAL:
        raise Invalid("Directory users change their password in the directory.")
    if actor.user != user:
        require(actor, "manage_users")
    elif not user.check_password(old_password or ""):
        record(actor, "change_password", "user", user.username, outcome="failure")
        raise Invalid("The current password is wrong.", {"old_password": ["The current password is wrong."]})
    _check_password(new_password, user)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    record(actor, "change_password", "user", user.username)


def _set_admin(actor: Actor, subject: User | Group, kind: str, value: bool) -> None:
    """Assign or remove the Management Portal administrator role of a user or group."""
    require(actor, "manage_users")
    if subject.is_portal_admin == value:
        return
    if not value and kind == "user" and subject == actor.user:
        raise Invalid("You cannot remove your own administrator role.")
    subject.is_portal_admin = value
    subject.save(update_fields=["is_portal_admin"])
    record(
        actor,
        "assign_admin" if value else "unassign_admin",
        kind,
        subject.name if kind == "group" else subject.username,
    )


@transaction.atomic
def set_user_admin(actor: Actor, user: User, value: bool) -> None:
    """Assign (True) or unassign (False) a user's portal administrator role."""
    _set_admin(actor, user, "user", value)


@transaction.atomic
def set_group_admin(actor: Actor, group: Group, value: bool) -> None:
    """Assign or unassign a group's portal administrator role; its members carry it."""
    _set_admin(actor, group, "group", value)


@transaction.atomic
def create_group(actor: Actor, name: str, members: list[User] | None = None) -> Group:
    """Create a local group with the given members (portal admins only)."""
    require(actor, "manage_users")
    name = _new_local_name(Group, "name", name)
    group = Group.objects.create(name=name, source=Source.LOCAL)
    group.members.set(members or [])
    record(actor, "create", "group", name, members=[m.username for m in members or []])
    return group


DIRECTORY_GROUP_MEMBERS = "Directory groups get their members from the directory."


@transaction.atomic
def update_group_members(actor: Actor, group: Group, members: list[User]) -> Group:
    """Replace a local group's members (portal admins only); directory groups are refused."""
    require(actor, "manage_users")
    if group.source != Source.LOCAL:
        raise Invalid(DIRECTORY_GROUP_MEMBERS, {"members": [DIRECTORY_GROUP_MEMBERS]})
    before = set(group.members.values_list("username", flat=True))
    after = {member.username for member in members}
    if before != after:
        group.members.set(members)
        record(actor, "update", "group", group.name, members=sorted(after))
    return group


@transaction.atomic
def delete_group(actor: Actor, group: Group) -> None:
    """Delete a group and its project roles (portal admins only).

    A directory group may be deleted too: it loses its roles and admin flag, and the next login of
    one of its members (or a directory sync) mirrors it again, without them.
    """
    require(actor, "manage_users")
    name, source = group.name, group.source
    group.delete()
    record(actor, "delete", "group", name, source=source)


@transaction.atomic
def update_settings(actor: Actor, **fields: Any) -> SystemSettings:
    """Change system settings (portal admins only)."""
    require(actor, "manage_system")
    current = SystemSettings.load()
    if "token_expiration_minutes" in fields and not 1 <= int(fields["token_expiration_minutes"]) <= 525600:
        raise Invalid(
            "Token expiration must be between 1 and 525600 minutes.",
            {"token_expiration_minutes": ["Enter a number of minutes from 1 to 525600."]},
        )
    if "audit_retention_days" in fields and int(fields["audit_retention_days"]) < 1:
        raise Invalid(
            "Audit log retention must be at least 1 day.", {"audit_retention_days": ["Enter at least 1 day."]}
        )
    changed = {k: v for k, v in fields.items() if getattr(current, k) != v}
    for key, value in changed.items():
        setattr(current, key, value)
    if changed:
        current.save()
        record(actor, "update", "settings", "system", **{k: str(v) for k, v in changed.items()})
        transaction.on_commit(_apply_schedules)
    return current


def _apply_schedules() -> None:
    """Bring the beat schedule in line with the settings."""
    from portal.core.schedules import install_schedules

    install_schedules()


def hash_token(key: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def create_token(actor: Actor, name: str, expires: datetime | None = None) -> tuple[ApiToken, str]:
    """Create an API token for the acting user; the key is returned once and never stored."""
    if actor.user is None:
        raise Forbidden("Log in to create API tokens.")
    name = name.strip()
    if not name:
        raise Invalid("A token name is required.", {"name": ["This field is required."]})
    if expires is not None and expires <= timezone.now():
        raise Invalid("The expiry must be in the future.", {"expires": ["The expiry must be in the future."]})
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=actor.user, name=name, prefix=key[:12], key_hash=hash_token(key), expires=expires
            )
    except IntegrityError as exc:
        raise Conflict(f"you already have a token named '{name}'") from exc
    record(actor, "create", "api_token", name)
    return token, key


@transaction.atomic
def revoke_token(actor: Actor, token: ApiToken) -> None:
    """Revoke (delete) one of the acting user's API tokens."""
    if token.user != actor.user and not can(actor.user, "manage_users"):
        raise NotFound("No such token.")
    name = token.name
    token.delete()
    record(actor, "revoke", "api_token", name)


# How precisely an API token's last use is recorded: at most one write per token and interval.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
# The user of an unexpired API token (every column, in the model's order), the token's id and whether its last use is
# older than the resolution. Plain SQL on a plain cursor: every docker push and pull sends a token, and compiling the
# ORM query for the token and its user (select_related) cost several times what running it does; a raw queryset's
# column mapping still cost half the lookup (bench/token_service.py).
_USER_FIELDS = User._meta.concrete_fields
_TOKEN_USER_SQL = f"""
    SELECT {", ".join(f'u."{field.column}"' for field in _USER_FIELDS)},
        t.id, (t.last_used IS NULL OR t.last_used < %s)
    FROM {User._meta.db_table} u JOIN {ApiToken._meta.db_table} t ON t.user_id = u.id
    WHERE t.key_hash = %s AND (t.expires IS NULL OR t.expires > %s)
"""


def user_for_token(key: str) -> User | None:
    """The active user an unexpired API token belongs to, marking it used; None otherwise."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_USER_SQL, [adapt(now - TOKEN_USE_RESOLUTION), hash_token(key), adapt(now)])
        row = cursor.fetchone()
    if row is None:
        return None
    user = User.from_db(connection.alias, [field.attname for field in _USER_FIELDS], _from_database(row))
    token_id, unmarked = row[len(_USER_FIELDS) :]
    if not user.is_active:
        return None
    if unmarked:
        ApiToken.objects.filter(pk=token_id).update(last_used=now)
    return user


def _from_database(row: tuple) -> list[Any]:
    """The user's columns of a row as the model holds them (SQLite returns dates as text and booleans as 0/1)."""
    values = list(row[: len(_USER_FIELDS)])
    for index, column, field in _converted_columns(connection.vendor):
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            values[index] = convert(values[index], column, connection)
    return values


@functools.cache
def _converted_columns(vendor: str) -> list[tuple[int, Col, Field]]:
    """(position, column, field) of the user's columns this database returns in another form than the model's."""
    found = []
    for index, field in enumerate(_USER_FIELDS):
        column = field.get_col(User._meta.db_table)
        if connection.ops.get_db_converters(column) or field.get_db_converters(connection):
            found.append((index, column, field))
    return found


@transaction.atomic
def unlock_logins(actor: Actor, username: str = "", address: str = "") -> int:
    """Let a user name and/or client address locked out by the login throttle log in again (portal admins only)."""
    require(actor, "manage_users")
    if not username and not address:
        raise Invalid("Name the user, the client address or both to unlock.")
    if address:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise Invalid(f"'{address}' is not an IP address.", {"address": ["Enter an IP address."]}) from None
    cleared = throttle.unlock(username, address)
    record(actor, "unlock", "login", username or address, username=username, address=address, counters=cleared)
    return cleared


def purge_audit_events(actor: Actor) -> int:
    """Delete audit events older than the retention period; returns how many went."""
    days = SystemSettings.load().audit_retention_days
    deleted, _ = AuditEvent.objects.filter(time__lt=timezone.now() - timedelta(days=days)).delete()
    if deleted:
        record(actor, "purge", "audit_log", f"{deleted} events older than {days} days")
    return deleted


def start_directory_sync(actor: Actor) -> Job:
    """Create a directory sync job (portal admins only) and enqueue it."""
    from portal.core import directory

    require(actor, "manage_system")
    if not directory.is_configured():
        raise Invalid("No directory is configured (WHARF_LDAP_URL), so there is nothing to synchronize.")
    return create_job(actor, directory.SYNC_JOB, "directory")
