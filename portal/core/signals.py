"""Audit events for logins, logouts, failed logins and login lockouts, from Django's and django-axes' signals."""

from __future__ import annotations

import logging
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.core import throttle
from portal.core.audit import Actor, client_address, record
from portal.core.models import Outcome

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def audit_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Record a successful browser login."""
    record(Actor(user, client_address(request)), "login", "session", user.username)


@receiver(user_logged_out)
def audit_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Record a logout (an expired session included)."""
    if user is not None:
        record(Actor(user, client_address(request)), "logout", "session", user.username)


@receiver(user_login_failed)
def audit_failed_login(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Record a failed login with the name that was tried (never the password)."""
    if throttle.was_refused(request):
        # Refused unchecked while locked out: the lockout was recorded once, and an attacker hammering a
        # locked account must not get a database write per attempt.
        return
    name = str(credentials.get("username", ""))[:150]
    address = client_address(request) if request is not None else None
    record(Actor(None, address, name), "login", "session", name, outcome=Outcome.FAILURE)


@receiver(user_locked_out)
def audit_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    """Record the failed login that reached the limit (axes signals every refused attempt after it too)."""
    if throttle.was_refused(request):
        return
    name = (username or "")[:150]
    failures = getattr(request, "axes_failures_since_start", None) or settings.AXES_FAILURE_LIMIT
    logger.warning("logins locked out after %s failures: user %r, address %s", failures, name, ip_address)
    record(
        Actor(None, ip_address, name),
        "lockout",
        "login",
        name or (ip_address or ""),
        outcome=Outcome.FAILURE,
        failures=failures,
        lockout_by=settings.LOGIN_LOCKOUT_BY,
        cool_off_seconds=settings.LOGIN_COOLOFF_SECONDS,
        path=request.META.get("PATH_INFO", ""),
    )
