"""REST API of scanning: scan a tag's image and read its report, the scan of all images (Scan Now), the
vulnerability database's feeds (with the air-gapped upload), and the system's and projects' CVE allowlists.

Every change goes through scanning.services, which checks who may make it and records the audit event.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core.api.serializers import JobSerializer
from portal.core.audit import Actor
from portal.core.errors import Forbidden, NotFound
from portal.core.models import SystemSettings
from portal.core.permissions import is_portal_admin
from projects.models import Project
from projects.scoped import (
    ListGetMixin,
    ProjectScopedMixin,
    ProjectScopedViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
    ServiceViewSet,
)
from registries.models import Tag
from registries.services import find_repository
from scanning import services
from scanning.api.serializers import (
    AllowlistEntrySerializer,
    FeedSourceSerializer,
    FindingSerializer,
    ImportedFeedSerializer,
    ImportSerializer,
    ProjectScannerSerializer,
    ScanAllSerializer,
    ScannerCreateSerializer,
    ScannerSerializer,
    ScannerTestSerializer,
    ScannerUpdateSerializer,
    ScanReportSerializer,
    ScanSerializer,
    UpdateSerializer,
)
from scanning.filters import FindingFilterSet
from scanning.models import AllowlistEntry, FeedSource, ScannerRegistration, Severity
from scanning.services import scanners
from scanning.services.scans import allowlist_entries, scan_for_tag

REPORT_PARAMETERS = [
    OpenApiParameter("severity", str, enum=Severity.values, description="Only findings of this severity."),
    OpenApiParameter("q", str, description="Findings whose vulnerability id or package holds the text."),
    OpenApiParameter("page", int, description="A page number of the findings (from 1)."),
    OpenApiParameter("page_size", int, description="Findings per page (default 25, at most 100)."),
]


def _fake(view: Any) -> bool:
    """True while drf-spectacular generates the schema (there is no real caller)."""
    return getattr(view, "swagger_fake_view", False)


class TagScanView(ProjectScopedMixin, generics.GenericAPIView):
    """A tag's image: POST scans it (portal and project admins), GET reads its report (whoever may pull it)."""

    project_action = "pull"
    serializer_class = ScanSerializer
    filterset_class = FindingFilterSet

    def tag(self) -> Tag:
        """The tag named in the URL, if the caller may pull from its project (else 404)."""
        repository = find_repository(self.request.user, self.project(), self.kwargs["repository"])
        return get_object_or_404(repository.tags.select_related("repository__project"), name=self.kwargs["tag"])

    @extend_schema(parameters=REPORT_PARAMETERS, responses=ScanReportSerializer)
    def get(self, request: Request, **kwargs: str) -> Response:
        """The report: the scan, then a page of its findings (worst first), filtered by severity and text."""
        tag = self.tag()
        scan = scan_for_tag(tag)
        if scan is None:
            raise NotFound(f"{tag} has not been scanned: POST to this address to scan it")
        page = self.paginate_queryset(self.filter_queryset(scan.findings.all()))
        context = {**self.get_serializer_context(), "allowlist": allowlist_entries(tag.repository.project)}
        findings = self.get_paginated_response(FindingSerializer(page, many=True, context=context).data).data
        return Response({**ScanSerializer(scan).data, "findings": findings})

    @extend_schema(request=None, responses={202: ScanSerializer})
    def post(self, request: Request, **kwargs: str) -> Response:
        """Scan the tag's image now (a scan of it already queued is kept)."""
        scan = services.start_scan(Actor.from_request(request), self.tag())
        return Response(ScanSerializer(scan).data, status=status.HTTP_202_ACCEPTED)


def _require_admin(request: Request, message: str) -> None:
    if not is_portal_admin(request.user):
        raise Forbidden(message)


class ScanAllView(APIView):
    """GET shows the scan of all images (schedule, last run, when Scan Now may run); POST is Scan Now."""

    @extend_schema(responses=ScanAllSerializer)
    def get(self, request: Request) -> Response:
        """The schedule and its next run, the latest scan of all images and when Scan Now may run again (portal
        admins)."""
        _require_admin(request, "The scan of all images is managed by Management Portal administrators.")
        current = SystemSettings.load()
        state = {
            "schedule": current.scan_schedule,
            "time": current.scan_time,
            "last": services.last_scan_all(),
            "next_allowed": services.next_scan_all(),
            "next_scheduled": services.next_scheduled_scan_all(),
        }
        return Response(ScanAllSerializer(state).data)

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        """Scan every image now: once in two hours (409 says when it may run again)."""
        job = services.start_scan_all(Actor.from_request(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class FeedSourceListView(generics.ListAPIView):
    """The vulnerability database's feeds: when each last ran, succeeded and changed, its counts and error."""

    serializer_class = FeedSourceSerializer

    def get_queryset(self) -> QuerySet[FeedSource]:
        if _fake(self):
            return FeedSource.objects.none()
        services.require_admin(Actor.from_request(self.request))
        return FeedSource.objects.order_by("name")


IMPORTED = inline_serializer("VulnDbImported", {"feeds": ImportedFeedSerializer(many=True)})


class VulnDbImportView(APIView):
    """POST loads an uploaded bundle or feed file into the vulnerability database (air-gapped sites)."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": ImportSerializer}, responses={200: IMPORTED})
    def post(self, request: Request) -> Response:
        """Load the file; a file that is neither a bundle nor a feed its source can read is a 400 saying why."""
        actor = Actor.from_request(request)
        services.require_admin(actor)
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        results = services.import_bundle(actor, upload, upload.name)
        feeds = [{"name": result.name, "counts": result.counts} for result in results]
        return Response({"feeds": feeds})


class VulnDbUpdateView(APIView):
    """POST starts an update of the vulnerability database from its feeds (all sources, or those named)."""

    @extend_schema(request=UpdateSerializer, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        """Start the update job."""
        actor = Actor.from_request(request)
        services.require_admin(actor)
        serializer = UpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.start_update(actor, serializer.validated_data.get("sources"))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class _AllowlistWrites(ServiceCreateMixin, ServiceDestroyMixin):
    """Add (POST {cve, expires}) and remove (DELETE /{cve}) through the services, which check who may."""

    lookup_field = "cve"
    lookup_value_regex = r"[^/]+"
    serializer_class = AllowlistEntrySerializer
    http_method_names = ["get", "post", "delete", "head", "options"]

    def target_project(self) -> Project | None:
        return None

    def get_object(self) -> AllowlistEntry:
        return get_object_or_404(self.get_queryset(), cve=self.kwargs["cve"].strip().upper())

    def perform_service_create(self, data: dict[str, Any]) -> AllowlistEntry:
        project = self.target_project()
        return services.add_allowlist_entry(self.actor(), data["cve"], project, data.get("expires"))

    def perform_service_destroy(self, entry: AllowlistEntry) -> None:
        services.remove_allowlist_entry(self.actor(), entry)


class SystemAllowlistViewSet(_AllowlistWrites, ListGetMixin, ServiceViewSet):
    """The system CVE allowlist (Configuration > Vulnerability Scanning): portal admins only."""

    def get_queryset(self) -> QuerySet[AllowlistEntry]:
        if _fake(self):
            return AllowlistEntry.objects.none()
        _require_admin(self.request, "The system CVE allowlist is managed by Management Portal administrators.")
        return AllowlistEntry.objects.filter(project__isnull=True).order_by("cve")


class ProjectAllowlistViewSet(_AllowlistWrites, ListGetMixin, ProjectScopedViewSet):
    """A project's CVE allowlist: its members read it, its administrators change it."""

    model = AllowlistEntry

    def target_project(self) -> Project:
        return self.project()

    def rows(self, project: Project) -> QuerySet[AllowlistEntry]:
        return AllowlistEntry.objects.filter(project=project).order_by("cve")


# --- scanner registrations ------------------------------------------------------------------------------


class ScannerViewSet(ListGetMixin, ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin, ServiceViewSet):
    """Scanner registrations (Configuration > Vulnerability Scanning > Scanners): portal admins only. Secrets are
    write-only; Test Connection and Make default are actions of one registration."""

    lookup_field, lookup_value_regex = "name", r"[^/]+"
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]
    remote_errors = True  # Test Connection reaches the scanner
    serializer_class = ScannerSerializer
    create_serializer_class = ScannerCreateSerializer
    update_serializer_class = ScannerUpdateSerializer
    pagination_class = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not _fake(self):
            scanners.require_admin(self.actor())

    def get_queryset(self) -> QuerySet[ScannerRegistration]:
        if not _fake(self):
            scanners.builtin_scanner()
        return ScannerRegistration.objects.all()

    def perform_service_create(self, data: dict[str, Any]) -> ScannerRegistration:
        return scanners.create_scanner(self.actor(), data)

    def perform_service_update(self, registration: ScannerRegistration, data: dict[str, Any]) -> ScannerRegistration:
        return scanners.update_scanner(self.actor(), registration, data)

    def perform_service_destroy(self, registration: ScannerRegistration) -> None:
        scanners.delete_scanner(self.actor(), registration)

    @extend_schema(request=None, responses={200: ScannerTestSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, name: str) -> Response:
        """Test Connection: an adapter's metadata, Clair's index state; the result is kept on the registration. An
        unknown HTTPS certificate is a 409 carrying it, to be trusted (POST /certificates) and tested again."""
        result = scanners.test_scanner(self.actor(), self.get_object())
        registration = ScannerRegistration.objects.get(name=name)
        body = {"ok": result.ok, "message": result.message, "metadata": result.metadata, "scanner": registration}
        return Response(ScannerTestSerializer(body).data)

    @extend_schema(request=None, responses={200: ScannerSerializer})
    @action(detail=True, methods=["post"])
    def default(self, request: Request, name: str) -> Response:
        """Make it the default scanner: projects that picked none are scanned by it."""
        return self.answer(scanners.make_default(self.actor(), self.get_object()))


class ProjectScannerView(ProjectScopedMixin, APIView):
    """The scanner of a project's images: GET (who may see the project) and PUT (its administrators)
    {"scanner": name|null}."""

    def _answer(self, project: Project) -> Response:
        choice = scanners.project_choice(project)
        effective = scanners.scanner_for_project(project)
        return Response({"scanner": choice.name if choice else None, "effective": effective.name})

    @extend_schema(responses=ProjectScannerSerializer)
    def get(self, request: Request, project_name: str) -> Response:
        """The scanner the project picked (null: the default) and the one scanning its images now."""
        return self._answer(self.project())

    @extend_schema(request=ProjectScannerSerializer, responses=ProjectScannerSerializer)
    def put(self, request: Request, project_name: str) -> Response:
        """Pick the project's scanner among the enabled registrations; null goes back to the default."""
        project = self.project()
        scanners.builtin_scanner()  # "wharf" names it even in a database emptied since the migration made it
        serializer = ProjectScannerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scanners.set_project_scanner(Actor.from_request(request), project, serializer.validated_data["scanner"])
        return self._answer(project)
