"""Login throttling on every path that checks a password: the UI login, API Basic auth and the token service.

django-axes counts failed logins in the database (so every gunicorn process sees the same counters) per
user name and per client address, as WHARF_LOGIN_LOCKOUT_BY says. Its backend comes first in
AUTHENTICATION_BACKENDS: once a limit is reached, `authenticate()` is refused there, before any other
backend hashes the password or asks the directory. Each login path then answers 429 with Retry-After
through `refusal()`, in its own format (a page, an API error, a registry error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_parameters, get_client_username
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest
from django.utils import timezone

# Set on a request refused because a limit was already reached (no password was checked): such attempts
# are neither audited one by one nor counted again; the lockout itself was audited once.
REFUSED_ATTRIBUTE = "wharf_login_refused"


@dataclass(frozen=True)
class Refusal:
    """A login refused by the throttle: what to tell the client and when to come back."""

    retry_after: int

    @property
    def message(self) -> str:
        """A sentence the person at the keyboard can act on."""
        return (
            f"Too many failed logins: try again in {_duration(self.retry_after)}, "
            "or ask a Management Portal administrator to unlock the account."
        )


class LoginThrottleBackend(AxesStandaloneBackend):
    """First of the authentication backends: refuses a login while its user name or address is locked out."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        """None to let the next backend check the password; raises PermissionDenied while locked out."""
        if request is None:
            # Code calling authenticate() on its own (test clients' login(), shell sessions), not a client.
            return None
        try:
            return super().authenticate(request, username, password, **kwargs)
        except AxesBackendPermissionDenied:
            setattr(request, REFUSED_ATTRIBUTE, True)
            raise


class LoginAttemptHandler(AxesDatabaseHandler):
    """axes' database handler, leaving alone an attempt the throttle refused unchecked.

    axes would still clean expired counters (a write) and signal the lockout again for each refused attempt; a
    client hammering a locked account should cost the database nothing but the reads that refuse it.
    """

    def user_login_failed(
        self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        """Count a checked failure (and lock out at the limit); nothing for a refused attempt."""
        if was_refused(request):
            request.axes_credentials = credentials  # type: ignore[union-attr]
            return
        super().user_login_failed(sender, credentials, request, **kwargs)


def username_key(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """The user name failures are counted under: trimmed and lowercased, as the directory compares names."""
    name = str((credentials or {}).get("username") or "").strip().lower()
    return name[:255] or None


def was_refused(request: HttpRequest | None) -> bool:
    """Whether the throttle refused this request's login without checking the password."""
    return bool(getattr(request, REFUSED_ATTRIBUTE, False))


def allows(request: HttpRequest, username: str) -> bool:
    """Whether a login under this name from this client may be accepted now (a remembered one included)."""
    if not settings.AXES_ENABLED:
        return True
    return AxesProxyHandler.is_allowed(request, {"username": username})


def refusal(request: HttpRequest) -> Refusal | None:
    """Why this request's failed login counts as throttled (the limit was reached by it or before it), else None."""
    if not getattr(request, "axes_locked_out", False):
        return None
    return Refusal(retry_after=_seconds_until_unlocked(request))


def _seconds_until_unlocked(request: HttpRequest) -> int:
    """Seconds until the newest failure of each exhausted counter is older than the cool-off."""
    credentials = getattr(request, "axes_credentials", None)
    cool_off = timedelta(seconds=settings.LOGIN_COOLOFF_SECONDS)
    now = timezone.now()
    ends: list[datetime] = []
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None)
    agent = getattr(request, "axes_user_agent", "")
    for lookup in get_client_parameters(username, address, agent, request, credentials):
        counted = AccessAttempt.objects.filter(**lookup, attempt_time__gte=now - cool_off).aggregate(
            failures=Sum("failures_since_start"), newest=Max("attempt_time")
        )
        if (counted["failures"] or 0) >= settings.AXES_FAILURE_LIMIT and counted["newest"] is not None:
            ends.append(counted["newest"] + cool_off)
    if not ends:
        return settings.LOGIN_COOLOFF_SECONDS
    return max(1, math.ceil((max(ends) - now).total_seconds()))


@dataclass(frozen=True)
class Lockout:
    """A user name or client address that may not log in until `until`."""

    kind: str
    value: str
    failures: int
    until: datetime


def current_lockouts() -> list[Lockout]:
    """Every user name and address locked out now (each counted on its own, as WHARF_LOGIN_LOCKOUT_BY allows)."""
    if not settings.AXES_ENABLED:
        return []
    cool_off = timedelta(seconds=settings.LOGIN_COOLOFF_SECONDS)
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - cool_off)
    found = []
    for kind, field in (("user", "username"), ("address", "ip_address")):
        if field not in settings.AXES_LOCKOUT_PARAMETERS:
            continue
        rows = (
            recent.exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(failures=Sum("failures_since_start"), newest=Max("attempt_time"))
            .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
            .order_by(field)
        )
        found += [Lockout(kind, row[field], row["failures"], row["newest"] + cool_off) for row in rows]
    return found


def unlock(username: str = "", address: str = "") -> int:
    """Forget the failed logins of a user name and/or a client address; returns how many counters went."""
    cleared = 0
    if username:
        cleared += reset(username=username_key(None, {"username": username}))
    if address:
        cleared += reset(ip=address)
    return cleared


def _duration(seconds: int) -> str:
    """'45 seconds', '1 minute', '15 minutes' (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
