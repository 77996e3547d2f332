"""Session expiry after the configured idle time (Administration > Configuration > Token Expiration), the
request body limit and the Content-Security-Policy header."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from portal.core.models import SystemSettings

LAST_SEEN_KEY = "wharf_last_seen"


# How stale a session's "last seen" may get before a request writes it again.
SESSION_TOUCH_SECONDS = 30


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
            last_seen = request.session.get(LAST_SEEN_KEY)
            if last_seen is not None and now - last_seen > lifetime:
                logout(request)
            elif last_seen is None or now - last_seen >= SESSION_TOUCH_SECONDS:
                # Written at most every SESSION_TOUCH_SECONDS, not on every page: a session write per request
                # costs a database write per click. An idle session ends at most that much early.
                request.session[LAST_SEEN_KEY] = now
                request.session.set_expiry(lifetime)
        return self.get_response(request)


# Paths whose bodies may be longer (an uploaded vulnerability database is hundreds of MB), each with the setting
# that holds its limit; apps add theirs from ready() with allow_large_body. Django streams such uploads to a
# temporary file, so a long body is not held in memory.
LARGE_BODY_PATHS: dict[str, str] = {}


def allow_large_body(path: str, setting: str) -> None:
    """Let requests to `path` carry bodies up to the size the setting of that name holds."""
    LARGE_BODY_PATHS[path] = setting


class RequestBodyLimitMiddleware:
    """Refuse a request body longer than MAX_REQUEST_BODY_BYTES with a 413, before anything reads it.

    Django's DATA_UPLOAD_MAX_MEMORY_SIZE only guards form posts and `request.body`; DRF's parsers read the body
    stream themselves, so without this any JSON body was accepted whole (100 MB took a web process to 358 MB).
    /v2/ is left alone: layer uploads are streamed to the registry, never held.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        large = LARGE_BODY_PATHS.get(request.path_info)
        limit = getattr(settings, large) if large else settings.MAX_REQUEST_BODY_BYTES
        if not request.path_info.startswith("/v2/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                detail = f"The request body is {length} bytes; at most {limit} are accepted."
                return JsonResponse({"detail": detail, "errors": {}}, status=413)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY with every answer that does not set its own.

    The pages run no inline script and carry no inline style (static/wharf/wharf.js holds every behaviour, htmx's
    indicator style is in wharf.css), so the policy needs no 'unsafe-inline' and an injected script cannot run.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
