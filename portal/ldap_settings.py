"""The LDAP block of the settings, built in one place so production and the integration tests share it."""

from __future__ import annotations

from typing import Any

from portal.env import ConfigError, env_bool, env_int, env_secret, env_str

DIRECTORY_BACKEND = "portal.core.directory.DirectoryBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# First, so a locked-out login is refused before any backend hashes a password or binds to the directory.
THROTTLE_BACKEND = "portal.core.throttle.LoginThrottleBackend"


def ldap_settings(
    url: str,
    bind_dn: str,
    bind_password: str,
    user_base: str,
    group_base: str,
    user_attr: str = "uid",
    timeout: int = 5,
    start_tls: bool = False,
) -> dict[str, Any]:
    """Every Django setting a directory needs, as a name -> value mapping to merge into the settings."""
    import ldap
    from django_auth_ldap.config import LDAPSearch, NestedGroupOfNamesType

    return {
        "LDAP_URL": url,
        "LDAP_USER_BASE": user_base,
        "LDAP_GROUP_BASE": group_base,
        "LDAP_USER_ATTR": user_attr,
        # The directory is asked first; local accounts (the first administrator) still log in.
        "AUTHENTICATION_BACKENDS": [THROTTLE_BACKEND, DIRECTORY_BACKEND, MODEL_BACKEND],
        "AUTH_LDAP_SERVER_URI": url,
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": bind_password,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, f"({user_attr}=%(user)s)"),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)"),
        "AUTH_LDAP_GROUP_TYPE": NestedGroupOfNamesType(),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        # Group membership decides the administrator role, so it is read fresh at every login.
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "AUTH_LDAP_CONNECTION_OPTIONS": {
            ldap.OPT_NETWORK_TIMEOUT: timeout,
            ldap.OPT_TIMEOUT: timeout,
            ldap.OPT_REFERRALS: 0,
        },
        "AUTH_LDAP_START_TLS": start_tls,
    }


def ldap_settings_from_env() -> dict[str, Any]:
    """The LDAP settings from the WHARF_LDAP_* variables; empty when WHARF_LDAP_URL is unset."""
    url = env_str("WHARF_LDAP_URL")
    if not url:
        return {}
    user_base, group_base = env_str("WHARF_LDAP_USER_BASE"), env_str("WHARF_LDAP_GROUP_BASE")
    if not user_base or not group_base:
        raise ConfigError("WHARF_LDAP_USER_BASE and WHARF_LDAP_GROUP_BASE are required with WHARF_LDAP_URL")
    return ldap_settings(
        url,
        bind_dn=env_str("WHARF_LDAP_BIND_DN"),
        bind_password=env_secret("WHARF_LDAP_BIND_PASSWORD"),
        user_base=user_base,
        group_base=group_base,
        user_attr=env_str("WHARF_LDAP_USER_ATTR", "uid"),
        timeout=env_int("WHARF_LDAP_TIMEOUT", 5, minimum=1),
        start_tls=env_bool("WHARF_LDAP_START_TLS", False),
    )
