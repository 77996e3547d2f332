"""Domain errors with messages a user can act on, and their mapping to HTTP for the API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response


class DomainError(Exception):
    """Base of the errors services raise; `status` is the HTTP status the API answers with."""

    status = status.HTTP_400_BAD_REQUEST

    def __init__(
        self, message: str, errors: dict[str, list[str]] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        # More keys for the API body, next to "detail" and "errors" (e.g. the certificate to trust).
        self.extra = extra or {}


class Invalid(DomainError):
    """The input breaks a rule; `errors` names the fields."""


class Conflict(DomainError):
    """The request conflicts with current state (duplicate name, resource still in use)."""

    status = status.HTTP_409_CONFLICT


class Forbidden(DomainError):
    """The user may see the object but not take this action on it."""

    status = status.HTTP_403_FORBIDDEN


class NotFound(DomainError):
    """No such object, or one the user may not see."""

    status = status.HTTP_404_NOT_FOUND


class RemoteUnreachable(DomainError):
    """A remote system (directory, registry, host) did not answer usefully.

    `transient` says whether trying again later may help (refused, timed out, 5xx): a job retries
    those with backoff. A fault that another attempt cannot mend (a missing binary, a refused
    login) is raised with transient=False and fails the job at once.
    """

    status = status.HTTP_502_BAD_GATEWAY

    def __init__(
        self,
        message: str,
        errors: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        *,
        transient: bool = True,
    ) -> None:
        super().__init__(message, errors, extra)
        self.transient = transient


def _validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    """Django's ValidationError as a field -> messages mapping."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for e in errs for m in e.messages] for field, errs in exc.error_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def _first_message(errors: Any) -> str:
    """The first human message inside DRF's nested error structure."""
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            if message:
                return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    elif isinstance(errors, list):
        for value in errors:
            message = _first_message(value)
            if message:
                return message
    elif errors:
        return str(errors)
    return ""


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer every API error as {"detail": ..., "errors": {...}} with the right status."""
    from rest_framework.views import exception_handler

    if isinstance(exc, DomainError):
        return Response({**exc.extra, "detail": exc.message, "errors": exc.errors}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        errors = _validation_errors(exc)
        return Response({"detail": _first_message(errors), "errors": errors}, status=400)
    if isinstance(exc, (Http404, DjangoPermissionDenied)):
        exc = exceptions.NotFound() if isinstance(exc, Http404) else exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = {"detail": _first_message(errors) or "Invalid input.", "errors": errors}
    else:
        response.data = {"detail": str(response.data.get("detail", "")), "errors": {}}
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page, except under /api/, where a path no route matches gets the API's JSON error body."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)
