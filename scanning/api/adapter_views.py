"""The built-in scanner served as a Harbor pluggable scanner adapter (spec v1.1 and v1.2) under /scanner/api/v1/,
so Harbor, or another Wharf, can use Wharf's scanner: register `https://<portal>/scanner` with an Authorization
header `Bearer <API token of a portal administrator>`.

The API speaks its own media types and error shape (`{"error": {"message": ...}}`), not the portal API's, so these
views read and write their bodies themselves; the work is scanning.services.adapter's.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from portal.core.audit import Actor
from portal.core.authentication import BasicAuthentication, BearerTokenAuthentication
from portal.core.errors import DomainError
from scanning.harbor_adapter import (
    ERROR,
    METADATA_V10,
    METADATA_V11,
    REPORT_TYPES,
    SCAN_REQUEST_TYPES,
    SCAN_RESPONSE,
    VULNERABILITY_REPORT,
    MalformedDocument,
    ScanRequest,
    Unsupported,
    error_body,
    known_media_type,
)
from scanning.services import adapter


def _answer(data: Any, content_type: str, status_code: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data), content_type=content_type, status=status_code)


def error_response(message: str, status_code: int) -> HttpResponse:
    """The spec's ErrorResponse with its media type."""
    return _answer(error_body(message), ERROR, status_code)


def accepted(request: Request) -> list[str]:
    """The media types of the Accept header, in the order given, without q-values."""
    entries = []
    for entry in request.headers.get("Accept", "").split(","):
        parameters = [part.strip() for part in entry.split(";") if part.strip() and not part.strip().startswith("q=")]
        if parameters:
            entries.append("; ".join(parameters))
    return entries


class AdapterView(APIView):
    """Authenticated by an API token (or Basic) of a portal administrator; errors in the spec's shape."""

    authentication_classes = [BearerTokenAuthentication, BasicAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes: list = []
    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        """Each handler picks its media type from Accept itself: DRF must not answer 406 to the spec's types."""
        return JSONRenderer(), JSONRenderer.media_type

    def handle_exception(self, exc: Exception) -> HttpResponse:
        """Every refusal as the spec's ErrorResponse, with the status the portal API would give."""
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            response = error_response(str(exc.detail), status.HTTP_401_UNAUTHORIZED)
            response["WWW-Authenticate"] = BearerTokenAuthentication().authenticate_header(self.request)
            return response
        if isinstance(exc, exceptions.APIException):
            response = error_response(str(exc.detail), exc.status_code)
            if isinstance(exc, exceptions.Throttled) and exc.wait:
                response["Retry-After"] = str(int(exc.wait))
            return response
        if isinstance(exc, DomainError):
            return error_response(exc.message, exc.status)
        return super().handle_exception(exc)


class MetadataView(AdapterView):
    """GET /metadata: the scanner, what it scans and the reports it makes."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        """The metadata, as version 1.1 when asked (spec v1.2), else 1.0."""
        described = adapter.metadata(Actor.from_request(request))
        wanted = next((kind for kind in accepted(request) if known_media_type(kind, (METADATA_V11,))), "")
        return _answer(described.as_dict(), METADATA_V11 if wanted else METADATA_V10)


class ScanView(AdapterView):
    """POST /scan: accept a scan request; the scan runs as a job and its id is answered at once (202)."""

    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponse:
        """400 for a body that is not the request's JSON, 415 for another media type, 422 for a wrong field."""
        content_type = request.headers.get("Content-Type", "")
        if known_media_type(content_type, SCAN_REQUEST_TYPES) is None:
            return error_response(
                f"the body must be a scan request ({SCAN_REQUEST_TYPES[0]}), not '{content_type or 'nothing'}'",
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            document = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedDocument(f"the body is not JSON: {exc}") from None
        scan = adapter.request_scan(Actor.from_request(request), ScanRequest.from_dict(document))
        return _answer({"id": str(scan.uuid)}, SCAN_RESPONSE, status.HTTP_202_ACCEPTED)


class ReportView(AdapterView):
    """GET /scan/{id}/report: 302 with Refresh-After while the scan runs, the report when done, 500 if it failed."""

    @extend_schema(exclude=True)
    def get(self, request: Request, scan_id: str) -> HttpResponse:
        """The report in the media type asked for (the v1.2 generic report when Accept names none)."""
        asked = accepted(request)
        media_type = VULNERABILITY_REPORT
        if asked and not any(kind in ("*/*", "application/*", "application/json") for kind in asked):
            chosen = next(
                (known_media_type(kind, REPORT_TYPES) for kind in asked if known_media_type(kind, REPORT_TYPES)), None
            )
            if chosen is None:
                raise Unsupported(f"this scanner makes no '{asked[0]}' report (it makes: {', '.join(REPORT_TYPES)})")
            media_type = chosen
        state = adapter.report_state(adapter.find_scan(Actor.from_request(request), scan_id))
        if state.report is not None:
            return _answer(state.report, media_type)
        if state.error:
            return error_response(state.error, status.HTTP_500_INTERNAL_SERVER_ERROR)
        # No Location: the spec's 302 means "ask again later", and a client following it would loop.
        response = HttpResponse(status=status.HTTP_302_FOUND)
        response["Refresh-After"] = str(state.refresh_after)
        return response
