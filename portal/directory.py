"""The LDAP directory: login backend, group mirroring (nested groups resolved), search, and sync."""

from __future__ import annotations

from dataclasses import dataclass

import ldap
import ldap.dn
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_auth_ldap.backend import LDAPBackend, _LDAPUser
from ldap.filter import escape_filter_chars

from portal.errors import Invalid, NotFound, RemoteUnreachable
from portal.jobs import JobLog
from portal.models import Group, Job, Source, User

SEARCH_LIMIT = 50


def is_configured() -> bool:
    """True when WHARF_LDAP_URL names a directory."""
    return bool(getattr(settings, "LDAP_URL", ""))


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap, plus: directory users are marked as such and their groups mirrored."""

    def authenticate_ldap_user(self, ldap_user: _LDAPUser, password: str) -> User | None:
        """Log a directory user in and refresh their group membership."""
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            _mirror(user, ldap_user)
        return user

    def populate_user(self, username: str) -> User | None:
        """Create or refresh a user from the directory without a password; None if not found."""
        ldap_user = _LDAPUser(self, username=username)
        user = ldap_user.populate_user()
        if user is not None:
            _mirror(user, ldap_user)
        return user


@transaction.atomic
def _mirror(user: User, ldap_user: _LDAPUser) -> None:
    """Mark the user as a directory user and set their directory groups (nested resolved)."""
    user.source = Source.LDAP
    user.dn = ldap_user.dn or ""
    user.groups_synced_at = timezone.now()
    if user.has_usable_password():
        user.set_unusable_password()
    user.save(update_fields=["source", "dn", "groups_synced_at", "password"])
    wanted = []
    for group_dn in ldap_user.group_dns:
        name = ldap.dn.str2dn(group_dn)[0][0][1]
        group, _ = Group.objects.get_or_create(name=name, defaults={"source": Source.LDAP, "dn": group_dn})
        wanted.append(group)
    current = set(user.wharf_groups.filter(source=Source.LDAP))
    user.wharf_groups.remove(*(current - set(wanted)))
    user.wharf_groups.add(*(set(wanted) - current))


def _connection() -> ldap.ldapobject.LDAPObject:
    """A bound connection with the service account."""
    conn = ldap.initialize(settings.AUTH_LDAP_SERVER_URI)
    for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
        conn.set_option(option, value)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    if settings.AUTH_LDAP_START_TLS:
        conn.start_tls_s()
    conn.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
    return conn


def _search(base: str, filterstr: str, attrs: list[str], limit: int = 0) -> list[tuple[str, dict[str, list[bytes]]]]:
    """Run one subtree search; directory faults become RemoteUnreachable."""
    try:
        conn = _connection()
        try:
            results = conn.search_ext_s(base, ldap.SCOPE_SUBTREE, filterstr, attrs, sizelimit=limit)
        finally:
            conn.unbind_s()
    except ldap.SIZELIMIT_EXCEEDED as exc:
        results = exc.args[0].get("partial", []) if exc.args and isinstance(exc.args[0], dict) else []
    except ldap.SERVER_DOWN as exc:
        raise RemoteUnreachable(f"the directory at {settings.AUTH_LDAP_SERVER_URI} is unreachable") from exc
    except ldap.INVALID_CREDENTIALS as exc:
        raise RemoteUnreachable("the directory refused the service account (WHARF_LDAP_BIND_DN)") from exc
    except ldap.LDAPError as exc:
        raise RemoteUnreachable(f"directory search failed: {_ldap_message(exc)}") from exc
    return [(dn, attrs) for dn, attrs in results if dn]


def _ldap_message(exc: ldap.LDAPError) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("desc") or exc)


def _first(attrs: dict[str, list[bytes]], name: str) -> str:
    values = attrs.get(name) or []
    return values[0].decode() if values else ""


@dataclass(frozen=True)
class DirectoryEntry:
    """A user or group found in the directory."""

    kind: str  # "user" or "group"
    name: str
    full_name: str
    email: str
    dn: str


def search(query: str) -> list[DirectoryEntry]:
    """Directory users matching name, full name or email, and groups matching the name."""
    if not is_configured() or not query.strip():
        return []
    q = escape_filter_chars(query.strip())
    user_attr = settings.LDAP_USER_ATTR
    user_filter = f"(&(objectClass=person)(|({user_attr}=*{q}*)(cn=*{q}*)(displayName=*{q}*)(mail=*{q}*)))"
    entries = [
        DirectoryEntry("user", _first(a, user_attr), _first(a, "displayName") or _first(a, "cn"), _first(a, "mail"), dn)
        for dn, a in _search(
            settings.LDAP_USER_BASE, user_filter, [user_attr, "cn", "displayName", "mail"], SEARCH_LIMIT
        )
    ]
    group_filter = f"(&(objectClass=groupOfNames)(cn=*{q}*))"
    entries += [
        DirectoryEntry("group", _first(a, "cn"), _first(a, "cn"), "", dn)
        for dn, a in _search(settings.LDAP_GROUP_BASE, group_filter, ["cn"], SEARCH_LIMIT)
    ]
    return [e for e in entries if e.name]


def ensure_user(username: str) -> User:
    """The known user with this name, or one created from the directory entry."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    if is_configured():
        user = DirectoryBackend().populate_user(username)
        if user is not None:
            return user
    raise NotFound(f"no user named '{username}'")


def ensure_group(name: str) -> Group:
    """The known group with this name, or one created from the directory entry."""
    group = Group.objects.filter(name=name).first()
    if group is not None:
        return group
    if is_configured():
        found = _search(
            settings.LDAP_GROUP_BASE, f"(&(objectClass=groupOfNames)(cn={escape_filter_chars(name)}))", ["cn"], 1
        )
        if found:
            group, _ = Group.objects.get_or_create(name=name, defaults={"source": Source.LDAP, "dn": found[0][0]})
            return group
    raise NotFound(f"no group named '{name}'")


def sync_users(job: Job, log: JobLog) -> str:
    """Refresh every known directory user's attributes and groups; disable users gone from it."""
    if not is_configured():
        raise Invalid("No directory is configured (WHARF_LDAP_URL).")
    users = list(User.objects.filter(source=Source.LDAP).order_by("username"))
    backend = DirectoryBackend()
    refreshed = disabled = 0
    for index, user in enumerate(users, start=1):
        before = sorted(user.wharf_groups.values_list("name", flat=True))
        if backend.populate_user(user.username) is None:
            if user.is_active:
                User.objects.filter(pk=user.pk).update(is_active=False)
                disabled += 1
                log(f"{user.username}: no longer in the directory, disabled")
            continue
        after = sorted(user.wharf_groups.values_list("name", flat=True))
        refreshed += 1
        if before != after:
            log(f"{user.username}: groups {', '.join(before) or '-'} -> {', '.join(after) or '-'}")
        log.progress(index * 100 // len(users))
    return f"synchronized {refreshed} directory users, disabled {disabled}"
