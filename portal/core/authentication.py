"""API authentication: bearer API tokens, HTTP Basic (local or directory users) and the browser session."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from portal.core import throttle
from portal.core.models import User
from portal.core.remembered_logins import authenticate_basic
from portal.core.services import user_for_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer wharf_...` with a token the user created in their profile."""

    keyword = "Bearer"

    def authenticate(self, request: HttpRequest) -> tuple[User, None] | None:
        """The token's user, None when no bearer header is sent, 401 for a bad token."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid bearer header: give one token.")
        user = user_for_token(header[1].decode(errors="replace"))
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        return user, None

    def authenticate_header(self, request: HttpRequest) -> str:
        """Makes unauthenticated API calls answer 401 rather than 403."""
        return 'Bearer realm="wharf"'


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic for scripts, like Harbor; checks local and directory users, under the login throttle."""

    www_authenticate_realm = "wharf"

    def authenticate_credentials(
        self, userid: str, password: str, request: HttpRequest | None = None
    ) -> tuple[User, None]:
        """The user the credentials prove (a pair verified moments ago is not hashed again); 401 when they prove
        nobody, 429 once the login throttle refuses."""
        user = authenticate_basic(request, userid, password) if request is not None else None
        if user is not None:
            return user, None
        refused = throttle.refusal(request) if request is not None else None
        if refused is not None:
            raise exceptions.Throttled(wait=refused.retry_after, detail=refused.message)
        raise exceptions.AuthenticationFailed("Invalid username/password.")


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's session, with Django's CSRF check on unsafe methods."""
