"""REST API of the integrated registry's repositories and tags, garbage collection, reconcile, and
external registries and image search."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core.api.serializers import JobSerializer
from portal.core.audit import Actor
from portal.core.errors import Forbidden
from portal.core.models import Job
from projects.models import Project
from projects.roles import can, is_portal_admin
from projects.scoped import ListGetMixin, ProjectScopedViewSet, ServiceDestroyMixin
from registries import external_services, image_details, search, services, signed_tags
from registries.api.serializers import (
    ExternalRegistrySerializer,
    GcScheduleSerializer,
    RepositorySerializer,
    RepositorySignaturesSerializer,
    TagDetailsSerializer,
    TagSerializer,
    VerifySerializer,
)
from registries.external import parse_address
from registries.filters import RepositoryFilterSet, TagFilterSet
from registries.models import ExternalRegistry, GcSchedule, Repository, Tag


class ProjectRepositoryViewSet(ListGetMixin, ServiceDestroyMixin, ProjectScopedViewSet):
    """A project's repositories: members (and anyone on a public project) read; DevOps administrators delete."""

    remote_errors = True  # deleting asks the registry

    model = Repository
    serializer_class = RepositorySerializer
    filterset_class = RepositoryFilterSet
    project_action = "pull"

    def rows(self, project: Project) -> QuerySet[Repository]:
        return Repository.objects.filter(project=project).with_tag_counts()

    def get_object(self) -> Repository:
        repository = services.find_repository(self.request.user, self.project(), self.kwargs["repository"])
        return self.get_queryset().get(pk=repository.pk)

    def perform_service_destroy(self, repository: Repository) -> None:
        services.delete_repository(self.actor(), repository)


class TagViewSet(ListGetMixin, ServiceDestroyMixin, ProjectScopedViewSet):
    """Tags of one repository: readers list them; DevOps administrators delete one (its siblings stay)."""

    remote_errors = True  # deleting asks the registry

    model = Tag
    serializer_class = TagSerializer
    filterset_class = TagFilterSet
    project_action = "pull"

    def repository(self) -> Repository:
        """The repository named in the URL, if the caller may pull from its project (else 404)."""
        if not hasattr(self, "_repository"):
            self._repository = services.find_repository(self.request.user, self.project(), self.kwargs["repository"])
        return self._repository

    def rows(self, project: Project) -> QuerySet[Tag]:
        tags = self.repository().tags.select_related("repository__project").with_image_details()
        return tags.order_by("-pushed_at", "name")

    def get_object(self) -> Tag:
        return get_object_or_404(self.get_queryset(), name=self.kwargs["tag"])

    def get_serializer_context(self) -> dict[str, Any]:
        """The request's context plus the repository's signatures, read once for the whole answer (not per tag)."""
        context = super().get_serializer_context()
        if self.action in ("list", "retrieve") and not getattr(self, "swagger_fake_view", False):
            context["signatures"] = signed_tags.read(self.repository())
        return context

    def perform_service_destroy(self, tag: Tag) -> None:
        services.delete_tag(self.actor(), tag)


class TagDetailsView(APIView):
    """GET: what the tag's image is made of, read from the registry (cached by digest); 502 when it cannot be asked."""

    @extend_schema(responses={200: TagDetailsSerializer})
    def get(self, request: Request, project_name: str, repository: str, tag: str) -> Response:
        """The tag's media type, platforms, OS/architecture, created time, author, labels, layers and history."""
        project = _visible_project(request, project_name, "pull")
        repository_row = services.find_repository(request.user, project, repository)
        tag_row = get_object_or_404(repository_row.tags.all(), name=tag)
        details = image_details.for_tag(tag_row)
        commands = image_details.commands(request, project, tag_row)
        answer = {
            "name": tag_row.name,
            "repository": repository_row.name,
            "digest": details.digest,
            "media_type": details.media_type,
            "is_index": details.is_index,
            "images": details.images,
            "pull_command": commands.pull,
            "provision_command": commands.provision,
        }
        return Response(TagDetailsSerializer(answer).data)


class RepositorySignaturesView(APIView):
    """GET: the repository's content trust, for whoever may pull it: the signed targets as verified, each current
    tag's state (signed, or why not) and the problem when no trust data could be read.

    Trust data that cannot be read (none pushed, notary down, data not believed) is still a 200 with the reason in
    `problem`: it is the state of the repository, not an error of the caller's request.
    """

    @extend_schema(responses={200: RepositorySignaturesSerializer})
    def get(self, request: Request, project_name: str, repository: str) -> Response:
        """The repository's signatures."""
        project = _visible_project(request, project_name, "pull")
        report = signed_tags.report(services.find_repository(request.user, project, repository))
        return Response(RepositorySignaturesSerializer(report).data)


class RepositoryLibraryView(generics.ListAPIView):
    """Built-in repositories: every repository the caller may pull, across projects."""

    serializer_class = RepositorySerializer
    filterset_class = RepositoryFilterSet

    def get_queryset(self) -> QuerySet[Repository]:
        return Repository.objects.restrict(self.request.user).with_tag_counts()


def _require_admin(request: Request) -> None:
    if not can(request.user, "manage_system"):
        raise Forbidden("Only Management Portal administrators may run registry maintenance.")


@extend_schema(request=None, responses={202: JobSerializer})
class ReconcileView(APIView):
    """POST starts a reconcile of the database with the registry."""

    def post(self, request: Request) -> Response:
        """Start a reconcile job now."""
        job = services.start_reconcile(Actor.from_request(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GarbageCollectionView(generics.ListAPIView):
    """GET lists garbage collection runs (newest first); POST starts one (portal admins)."""

    serializer_class = JobSerializer

    def get_queryset(self) -> QuerySet[Job]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Job.objects.none()
        _require_admin(self.request)
        return Job.objects.filter(kind=services.GARBAGE_COLLECTION)

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        """Run garbage collection now."""
        job = services.start_gc(Actor.from_request(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GcScheduleView(APIView):
    """GET shows and PATCH changes the garbage collection schedule (portal admins)."""

    @extend_schema(responses=GcScheduleSerializer)
    def get(self, request: Request) -> Response:
        """The schedule."""
        _require_admin(request)
        return Response(GcScheduleSerializer(GcSchedule.load()).data)

    @extend_schema(request=GcScheduleSerializer, responses=GcScheduleSerializer)
    def patch(self, request: Request) -> Response:
        """Change the schedule."""
        _require_admin(request)
        serializer = GcScheduleSerializer(GcSchedule.load(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        schedule = services.update_gc_schedule(Actor.from_request(request), data.get("frequency"), data.get("time"))
        return Response(GcScheduleSerializer(schedule).data)


FOUND = inline_serializer(
    "VerifyResult",
    {
        "address": serializers.CharField(),
        "namespace": serializers.CharField(),
        "api_version": serializers.CharField(),
        "auth_type": serializers.CharField(),
    },
)


class _RegistryWrites:
    """Create, change and delete through the services; shared by the global and project viewsets."""

    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    serializer_class = ExternalRegistrySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    remote_errors = True  # saving verifies the address

    def target_project(self) -> Project | None:
        return None

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        registry = external_services.create_registry(
            Actor.from_request(request),
            data["name"],
            data["address"],
            credential=data.get("credential"),
            insecure=data.get("insecure", False),
            project=self.target_project(),
            enabled=data.get("enabled", True),
        )
        return Response(self.get_serializer(registry).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        registry = self.get_object()
        serializer = self.get_serializer(registry, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes: dict[str, Any] = {"enabled": data.get("enabled"), "name": data.get("name")}
        if "credential" in data:
            changes["credential"] = data["credential"]
        registry = external_services.update_registry(Actor.from_request(request), registry, **changes)
        return Response(self.get_serializer(registry).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        external_services.delete_registry(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class GlobalRegistryViewSet(_RegistryWrites, viewsets.ModelViewSet):
    """Global registries (Administration > Global Registries): portal admins only; POST verifies, then saves."""

    def get_queryset(self) -> QuerySet[ExternalRegistry]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return ExternalRegistry.objects.none()
        if not is_portal_admin(self.request.user):
            raise Forbidden("Global registries are managed by Management Portal administrators.")
        registries = ExternalRegistry.objects.filter(project__isnull=True).select_related("credential")
        return _matching(registries, self.request.query_params.get("q", "")).order_by("name")


def _matching(registries: QuerySet[ExternalRegistry], text: str) -> QuerySet[ExternalRegistry]:
    """`?q=`: registries whose name or address holds the text."""
    text = text.strip()
    return registries.filter(Q(name__icontains=text) | Q(address__icontains=text)) if text else registries


def _visible_project(request: Request, name: str, action: str = "view") -> Project:
    """The project named in the URL if the caller may take the action (view or pull) on it; 404 otherwise."""
    return get_object_or_404(Project.objects.restrict(request.user, action), name=name)


class ProjectRegistryViewSet(_RegistryWrites, viewsets.ModelViewSet):
    """A project's registries plus, read-only, the enabled global ones (flagged `global: true`)."""

    def project(self) -> Project:
        if not hasattr(self, "_project"):
            self._project = _visible_project(self.request, self.kwargs["project_name"])
        return self._project

    def target_project(self) -> Project:
        return self.project()

    def get_queryset(self) -> QuerySet[ExternalRegistry]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return ExternalRegistry.objects.none()
        project = self.project()
        if self.action in ("list", "retrieve"):
            scope = Q(project=project) | Q(project__isnull=True, enabled=True)
        else:
            scope = Q(project=project) | Q(project__isnull=True)
        return (
            _matching(ExternalRegistry.objects.filter(scope), self.request.query_params.get("q", ""))
            .select_related("credential", "project")
            .order_by("project", "name")  # globals last: the project's own come first
        )

    def get_object(self) -> ExternalRegistry:
        registry = get_object_or_404(self.get_queryset(), name=self.kwargs["name"])
        if registry.is_global and self.action not in ("retrieve",):
            raise Forbidden("Global registries are managed by Management Portal administrators.")
        return registry


class VerifyView(APIView):
    """POST checks an address (API version, auth, certificate trust) without saving anything."""

    remote_errors = True

    @extend_schema(request=VerifySerializer, responses={200: FOUND})
    def post(self, request: Request) -> Response:
        """Verify a registry address with an optional credential."""
        serializer = VerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        parsed = parse_address(data["address"], data["insecure"])
        actor, credential = Actor.from_request(request), data.get("credential")
        found = external_services.verify_address(
            actor, parsed.normalized, credential, data["insecure"], data.get("project")
        )
        body = {"address": parsed.normalized, "namespace": parsed.namespace, **found.__dict__}
        return Response(body)


RESULT = inline_serializer(
    "ImageSearch",
    {
        "results": serializers.ListField(child=serializers.DictField()),
        "partial": serializers.ListField(child=serializers.DictField()),
    },
)


class ImageSearchView(APIView):
    """GET searches every registry available to the project; slow or failing registries are named in `partial`."""

    @extend_schema(parameters=[OpenApiParameter("q", str)], responses={200: RESULT})
    def get(self, request: Request, project_name: str) -> Response:
        """Search images."""
        project = _visible_project(request, project_name, "pull")
        outcome = search.search(request.user, project, request.query_params.get("q", ""))
        return Response({"results": outcome.results, "partial": outcome.partial})


TAGS = inline_serializer(
    "ImageTags",
    {"registry": serializers.CharField(), "repository": serializers.CharField(), "tags": serializers.ListField()},
)


class ImageTagsView(APIView):
    """GET lists the tags of one repository of a registry available to the project."""

    remote_errors = True

    @extend_schema(responses={200: TAGS})
    def get(self, request: Request, project_name: str, registry: str, repository: str) -> Response:
        """The repository's tags."""
        project = _visible_project(request, project_name, "pull")
        names = search.tags(request.user, project, registry, repository)
        return Response({"registry": registry, "repository": repository, "tags": names})
