"""Remembered Basic-auth logins: a password verified moments ago is not hashed again on the next request.

API scripts and docker clients send the password with every request (docker asks the token service before each
push and pull), and each check costs PBKDF2's deliberate half-second of CPU, or a bind to the directory. After a
successful check the pair is remembered for WHARF_BASIC_AUTH_CACHE_SECONDS (at most DIRECTORY_SECONDS for directory
users, whose password and groups live in the directory) under a keyed hash of user name and password; the password
is never stored, nor its hash.

An entry holds the user's id and a fingerprint: a keyed hash of the user's current password hash and of a per-user
generation. A hit counts only when the user's row still exists, is active and gives the same fingerprint, so a
password change (however it is made), a disable or a deletion forgets the pair at once in every process, whatever
the cache holds; a logout (`forget`) replaces the generation. Failed checks are never remembered, and the login
throttle is asked before a hit counts, as it is before a password is hashed.

The entries live in the "logins" cache (see the settings), which every web process must share for `forget` to
reach them all: Redis at WHARF_CACHE_URL, else files in the data directory. A cache that fails only costs speed:
the password is then checked as if nothing were remembered.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_out
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from portal.core import throttle
from portal.core.models import Source, User

CACHE_ALIAS = "logins"
# Directory users are remembered for a minute at most: the directory may disable them, change their password or
# their groups (which decide the administrator role) at any time, and the portal learns of it only at a check.
DIRECTORY_SECONDS = 60
_SALT = "wharf.remembered-login"

logger = logging.getLogger(__name__)


def authenticate_basic(request: HttpRequest, username: str, password: str) -> User | None:
    """The active user a Basic-auth pair proves, from memory when it was verified recently; None otherwise.

    A refused login (wrong password, or the login throttle's lockout, which sets `request.axes_locked_out`) goes
    through Django's `authenticate()`, so it is audited and counted exactly as before.
    """
    user = remembered(username, password)
    if user is not None and throttle.allows(request, username):
        return user
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    remember(user, username, password)
    return user


def remembered(username: str, password: str) -> User | None:
    """The user this pair was verified for recently, when their row still matches; None otherwise."""
    if not settings.BASIC_AUTH_CACHE_SECONDS:
        return None
    try:
        entry = _cache().get(_entry_key(username, password))
        if entry is None:
            return None
        user_id, fingerprint = entry
        generation = _cache().get(_generation_key(user_id))
    except Exception:  # an unreachable cache costs a password check, never a refusal
        logger.warning("the logins cache cannot be read; checking the password", exc_info=True)
        return None
    if generation is None:
        return None
    user = User.objects.filter(pk=user_id, is_active=True).order_by().first()
    if user is None or not hmac.compare_digest(fingerprint, _fingerprint(user, generation)):
        return None
    return user


def remember(user: User, username: str, password: str) -> None:
    """Remember that this pair proves the user (call only after a successful check)."""
    seconds = settings.BASIC_AUTH_CACHE_SECONDS
    if not seconds or not user.is_active:
        return
    if user.source == Source.LDAP:
        seconds = min(seconds, DIRECTORY_SECONDS)
    try:
        cache = _cache()
        generation_key = _generation_key(user.pk)
        generation = cache.get(generation_key)
        if generation is None:
            # add(): another process may be making the first generation at the same moment; both use the one kept.
            cache.add(generation_key, secrets.token_hex(16), timeout=None)
            generation = cache.get(generation_key)
        if generation is not None:
            cache.set(_entry_key(username, password), (user.pk, _fingerprint(user, generation)), timeout=seconds)
    except Exception:
        logger.warning("the logins cache cannot be written; the next request checks the password again", exc_info=True)


def forget(user: User) -> None:
    """Forget every pair remembered for the user: a new generation matches none of their entries."""
    try:
        _cache().set(_generation_key(user.pk), secrets.token_hex(16), timeout=None)
    except Exception:
        # The entries then live out their short time; say so, since a logout is expected to end them.
        logger.error("the logins cache cannot be written: %s's remembered logins stay until they expire", user)


@receiver(user_logged_out)
def forget_at_logout(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    """A logout (an expired session included) ends the user's remembered Basic-auth logins too."""
    if user is not None and user.pk is not None:
        forget(user)


def _cache() -> BaseCache:
    return caches[CACHE_ALIAS]


def _entry_key(username: str, password: str) -> str:
    """The cache key of a pair: a keyed hash (from SECRET_KEY), so the cache holds nothing to guess passwords from."""
    digest = salted_hmac(f"{_SALT}.pair", f"{username}\0{password}", algorithm="sha256").hexdigest()
    return f"login:{digest}"


def _generation_key(user_id: int) -> str:
    return f"login-generation:{user_id}"


def _fingerprint(user: User, generation: str) -> str:
    """What ties an entry to the user's row as it is now: their id, password hash and generation."""
    value = f"{user.pk}\0{user.password}\0{generation}"
    return salted_hmac(f"{_SALT}.user", value, algorithm="sha256").hexdigest()
