"""Writing audit events: every state change, login and failed login records who, what, where and how it ended."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from portal.core.models import AuditEvent, Outcome

if TYPE_CHECKING:
    from portal.core.models import User


class Actor:
    """Who is acting and from where: a user (or none, for the system) and a client address."""

    def __init__(self, user: User | None = None, address: str | None = None, name: str | None = None) -> None:
        self.user = user if user is not None and user.is_authenticated else None
        self.address = address or None
        self.name = name if name is not None else (self.user.username if self.user else "")

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        """The request's user and client address."""
        return cls(getattr(request, "user", None), client_address(request))

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """A background job acting on its own."""
        return cls(None, None, name)


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: behind the trusted proxy, the X-Forwarded-For hop that proxy appended."""
    from django.conf import settings

    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The last hop is the one the proxy saw; anything before it is whatever the client chose to send,
            # and believing it would let a client rotate addresses past the login throttle and the audit log.
            hop = forwarded.split(",")[-1].strip()
            if _is_address(hop):
                return hop
    return request.META.get("REMOTE_ADDR") or None


def _is_address(text: str) -> bool:
    """Whether the text is an IPv4 or IPv6 address (what the audit log and the login throttle store)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def record(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_name: str = "",
    project: Any = None,
    outcome: str = Outcome.SUCCESS,
    **detail: Any,
) -> AuditEvent:
    """Write one audit event."""
    return AuditEvent.objects.create(
        username=actor.name,
        action=action,
        resource_type=resource_type,
        resource_name=resource_name,
        project=project if project is not None and project.pk else None,
        project_name=project.name if project is not None else "",
        outcome=outcome,
        client_address=actor.address,
        detail=detail,
    )
