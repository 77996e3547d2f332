"""Session expiry after the configured idle time (Administration > Configuration > Token Expiration)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from portal.core.models import SystemSettings

LAST_SEEN_KEY = "wharf_last_seen"


class SessionExpiryMiddleware:
    """Log a browser session out once it has been idle longer than the token expiration."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The session key first: requests without a session (registry tokens, API scripts) then skip
        # resolving the user, which they do not need here.
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is not None and session.session_key and user is not None and user.is_authenticated:
            lifetime = SystemSettings.token_lifetime_seconds()
            now = int(time.time())
            last_seen = request.session.get(LAST_SEEN_KEY, now)
            if now - last_seen > lifetime:
                logout(request)
            else:
                request.session[LAST_SEEN_KEY] = now
                request.session.set_expiry(lifetime)
        return self.get_response(request)
