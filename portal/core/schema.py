"""OpenAPI for drf-spectacular: Wharf's authentication schemes and the schema class of every view."""

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import serializers


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


class ErrorSerializer(serializers.Serializer):
    """Every API error (portal.core.errors): a message, and the messages of each field at fault.

    Some errors carry more keys beside these, e.g. the certificate a trust refusal asks to pin.
    """

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.JSONField(), help_text="field name -> its messages")


# Why each error status is answered; which operations answer it is decided in AutoSchema.error_statuses.
ERROR_DESCRIPTIONS = {
    "400": "The request is invalid: a parameter or field of the wrong type or value.",
    "401": "Not authenticated, or the credentials are wrong.",
    "403": "Authenticated, but not allowed to do this.",
    "404": "No such object, or one the caller may not see.",
    "409": "The request conflicts with the current state (a duplicate name, an object still in use).",
    "429": "Too many failed logins: the user name or address is locked out for a while (Retry-After).",
    "502": "A remote system (registry, container host, directory, server) did not answer usefully.",
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, knowing the input serializers of the service-backed viewsets.

    A viewset that parses its writes with `create_serializer_class` / `update_serializer_class`
    (projects.scoped) documents those as the request bodies, and its `serializer_class` as the answer.
    Every operation also documents the error statuses it can answer, with the `{detail, errors}` body;
    a view that talks to a remote system says so with `remote_errors = True` (its 502s).
    """

    INPUTS = {"create": "create_serializer_class", "update": "update_serializer_class"}
    WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def get_operation(self, *args: Any, **kwargs: Any) -> dict | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status in self.error_statuses(operation):
            if status not in responses:
                responses[status] = self._get_response_for_code(ErrorSerializer, status)
                responses[status]["description"] = ERROR_DESCRIPTIONS[status]
        return operation

    def error_statuses(self, operation: dict) -> list[str]:
        """The error statuses this operation can answer."""
        parameters = operation.get("parameters") or []
        asks = parameters or operation.get("requestBody") or self.method in self.WRITES
        statuses = ["400"] if asks else []
        # Credentials are checked on every endpoint, even one open to all, so a wrong or throttled
        # login is answered everywhere.
        statuses += ["401", "403", "429"]
        # A path or body naming an object the caller cannot see, a page past the last one, or an unknown cursor.
        if "{" in self.path or self.method in self.WRITES or any(p["name"] in ("page", "cursor") for p in parameters):
            statuses.append("404")
        if self.method in self.WRITES:
            statuses.append("409")
        if getattr(self.view, "remote_errors", False):
            statuses.append("502")
        return statuses

    def get_request_serializer(self) -> Any:
        action = getattr(self.view, "action", None)
        attribute = self.INPUTS.get("update" if action == "partial_update" else action or "")
        serializer_class = getattr(self.view, attribute, None) if attribute else None
        return serializer_class() if serializer_class else super().get_request_serializer()
