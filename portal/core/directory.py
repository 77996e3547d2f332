"""The LDAP directory: login backend, group mirroring (nested groups resolved), search, and sync."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import ldap
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_auth_ldap.backend import LDAPBackend, _LDAPUser
from ldap.filter import escape_filter_chars

from portal.core.errors import Conflict, Invalid, NotFound, RemoteUnreachable
from portal.core.jobs import JobContext
from portal.core.models import Group, Job, Source, User

SEARCH_LIMIT = 50
# The kind of the directory sync job (runner registered in portal/tasks.py).
SYNC_JOB = "directory_sync"

logger = logging.getLogger(__name__)


def is_configured() -> bool:
    """True when WHARF_LDAP_URL names a directory."""
    return bool(getattr(settings, "LDAP_URL", ""))


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap, plus: directory users are marked as such and their groups mirrored."""

    def get_or_build_user(self, username: str, ldap_user: _LDAPUser) -> tuple[User, bool]:
        """The portal user for a directory entry; never a local account that happens to share the name."""
        user, built = super().get_or_build_user(username, ldap_user)
        if built:
            user.source = Source.LDAP
        elif user.source != Source.LDAP:
            # Otherwise whoever owns the name in the directory would take over the local account
            # (the first administrator included) and its roles.
            raise ldap_user.AuthenticationFailed(f"'{username}' is a local account, not a directory one")
        return user, built

    def authenticate_ldap_user(self, ldap_user: _LDAPUser, password: str) -> User | None:
        """Log a directory user in and refresh their group membership."""
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            groups = _directory_groups(ldap_user)
        except ldap.LDAPError as exc:
            # Without the groups the user's roles are unknown; refuse rather than guess.
            logger.warning("login of %s refused: their directory groups could not be read: %s", user, exc)
            return None
        _mirror(user, ldap_user.dn or "", groups)
        return user

    def populate_user(self, username: str) -> User | None:
        """Create or refresh a user from the directory without a password; None if not found."""
        ldap_user = _LDAPUser(self, username=username)
        user = ldap_user.populate_user()
        if user is not None:
            _mirror(user, ldap_user.dn or "", _directory_groups(ldap_user))
        return user


def _directory_groups(ldap_user: _LDAPUser) -> dict[str, str]:
    """The user's directory groups, nested ones resolved, as DN -> name (the cn as the directory spells it)."""
    group_type = ldap_user.settings.GROUP_TYPE
    return {
        dn: group_type.group_name_from_info((dn, attrs)) for dn, attrs in ldap_user._get_groups()._get_group_infos()
    }


def _group_for(dn: str, name: str) -> Group | None:
    """The portal group mirroring a directory group (by DN or name, any case), created if new.

    None when a local group holds the name: a directory entry must not slip its members into it.
    """
    group = Group.objects.filter(Q(dn__iexact=dn) | Q(name__iexact=name), source=Source.LDAP).first()
    if group is not None:
        if group.dn != dn:
            group.dn = dn
            group.save(update_fields=["dn"])
        return group
    if Group.objects.filter(name__iexact=name).exists():
        logger.warning("directory group %s not mirrored: a local group is named '%s'", dn, name)
        return None
    return Group.objects.create(name=name, source=Source.LDAP, dn=dn)


@transaction.atomic
def _mirror(user: User, dn: str, group_dns: dict[str, str]) -> None:
    """Mark the user as a directory user and set their directory groups (nested resolved)."""
    user.source = Source.LDAP
    user.dn = dn
    user.groups_synced_at = timezone.now()
    if user.has_usable_password():
        user.set_unusable_password()
    user.save(update_fields=["source", "dn", "groups_synced_at", "password"])
    wanted = {_group_for(group_dn, name) for group_dn, name in group_dns.items()} - {None}
    current = set(user.wharf_groups.filter(source=Source.LDAP))
    user.wharf_groups.remove(*(current - wanted))
    user.wharf_groups.add(*(wanted - current))


def _connection() -> ldap.ldapobject.LDAPObject:
    """A bound connection with the service account."""
    conn = ldap.initialize(settings.AUTH_LDAP_SERVER_URI)
    for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
        conn.set_option(option, value)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    try:
        if settings.AUTH_LDAP_START_TLS:
            conn.start_tls_s()
        conn.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
    except ldap.LDAPError:
        conn.unbind_s()
        raise
    return conn


def _search(base: str, filterstr: str, attrs: list[str], limit: int = 0) -> list[tuple[str, dict[str, list[bytes]]]]:
    """Run one subtree search (up to `limit` entries); directory faults become RemoteUnreachable."""
    results: list[tuple[str, dict[str, list[bytes]]]] = []
    try:
        conn = _connection()
        try:
            msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrs, sizelimit=limit)
            _collect(conn, msgid, results)
        finally:
            conn.unbind_s()
    except ldap.SERVER_DOWN as exc:
        raise RemoteUnreachable(f"the directory at {settings.AUTH_LDAP_SERVER_URI} is unreachable") from exc
    except ldap.INVALID_CREDENTIALS as exc:
        raise RemoteUnreachable("the directory refused the service account (WHARF_LDAP_BIND_DN)") from exc
    except ldap.LDAPError as exc:
        raise RemoteUnreachable(f"directory search failed: {_ldap_message(exc)}") from exc
    return [(dn, attrs) for dn, attrs in results if dn]


def _collect(conn: ldap.ldapobject.LDAPObject, msgid: int, results: list) -> None:
    """Gather a search's entries as they arrive, keeping those that came before a size limit hit."""
    try:
        while True:
            kind, data = conn.result(msgid, all=0)
            if kind == ldap.RES_SEARCH_RESULT:
                return
            if kind == ldap.RES_SEARCH_ENTRY:
                results.extend(data)
    except ldap.SIZELIMIT_EXCEEDED:
        return


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


def _user_entries(username: str) -> list[tuple[str, dict[str, list[bytes]]]]:
    """The directory entries the login search finds for a user name (one, when all is well)."""
    search = settings.AUTH_LDAP_USER_SEARCH
    filterstr = search.filterstr % {"user": escape_filter_chars(username)}
    return _search(search.base_dn, filterstr, [settings.LDAP_USER_ATTR], 2)


def _populate(username: str) -> User | None:
    """Create or refresh the user from the directory; None when the directory has no such user.

    django-auth-ldap swallows directory faults and answers None, which would read as "gone";
    asking the directory ourselves first tells the two apart.
    """
    if not _user_entries(username):
        return None
    try:
        user = DirectoryBackend().populate_user(username)
    except ldap.LDAPError as exc:
        raise RemoteUnreachable(f"reading '{username}' from the directory failed: {_ldap_message(exc)}") from exc
    if user is None:
        raise RemoteUnreachable(f"the directory entry of '{username}' could not be read")
    return user


def ensure_user(username: str) -> User:
    """The known user with this name, or one created from the directory entry."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    if is_configured():
        user = _populate(username)
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
            dn, attrs = found[0]
            group = _group_for(dn, _first(attrs, "cn") or name)
            if group is None:
                raise Conflict(f"a local group is named '{name}'; the directory group cannot be used")
            return group
    raise NotFound(f"no group named '{name}'")


def sync_users(job: Job, log: JobContext) -> str:
    """Refresh every known directory user's attributes and groups; disable users gone from it."""
    if not is_configured():
        raise Invalid("No directory is configured (WHARF_LDAP_URL).")
    # Fail before touching anyone when the directory cannot be asked at all.
    _search(settings.LDAP_USER_BASE, "(objectClass=*)", ["1.1"], 1)
    users = list(User.objects.filter(source=Source.LDAP).order_by("username"))
    refreshed = disabled = failed = 0
    for index, user in enumerate(users, start=1):
        before = sorted(user.wharf_groups.values_list("name", flat=True))
        try:
            found = _populate(user.username)
        except RemoteUnreachable as exc:
            failed += 1
            log(f"{user.username}: not refreshed: {exc.message}")
            continue
        if found is None:
            if user.is_active:
                User.objects.filter(pk=user.pk).update(is_active=False)
                disabled += 1
                log(f"{user.username}: no longer in the directory, disabled")
        else:
            refreshed += 1
            after = sorted(user.wharf_groups.values_list("name", flat=True))
            if before != after:
                log(f"{user.username}: groups {', '.join(before) or '-'} -> {', '.join(after) or '-'}")
        log.progress(index, len(users))
        log.checkpoint()
    summary = f"synchronized {refreshed} directory users, disabled {disabled}"
    if failed:
        raise RemoteUnreachable(f"{summary}; {failed} could not be read from the directory")
    return summary
