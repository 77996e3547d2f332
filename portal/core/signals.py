"""Audit events for logins, logouts and failed logins, from Django's auth signals."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.core.audit import Actor, client_address, record
from portal.core.models import Outcome


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
    name = str(credentials.get("username", ""))[:150]
    address = client_address(request) if request is not None else None
    record(Actor(None, address, name), "login", "session", name, outcome=Outcome.FAILURE)
