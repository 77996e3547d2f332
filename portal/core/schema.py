"""OpenAPI for drf-spectacular: Wharf's authentication schemes and the schema class of every view."""

from typing import Any

from drf_spectacular import openapi
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


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, knowing the input serializers of the service-backed viewsets.

    A viewset that parses its writes with `create_serializer_class` / `update_serializer_class`
    (projects.scoped) documents those as the request bodies, and its `serializer_class` as the answer.
    """

    INPUTS = {"create": "create_serializer_class", "update": "update_serializer_class"}

    def get_request_serializer(self) -> Any:
        action = getattr(self.view, "action", None)
        attribute = self.INPUTS.get("update" if action == "partial_update" else action or "")
        serializer_class = getattr(self.view, attribute, None) if attribute else None
        return serializer_class() if serializer_class else super().get_request_serializer()
