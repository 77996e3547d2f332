"""OpenAPI descriptions of Wharf's authentication schemes, for drf-spectacular."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """API tokens a user creates in their profile."""

    target_class = "portal.core.authentication.BearerTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: object) -> dict:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")


class BasicScheme(OpenApiAuthenticationExtension):
    """HTTP Basic with a local or directory user."""

    target_class = "portal.core.authentication.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "http", "scheme": "basic"}


class SessionScheme(OpenApiAuthenticationExtension):
    """The browser session cookie."""

    target_class = "portal.core.authentication.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
