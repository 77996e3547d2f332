"""REST API of the integrated registry: repositories and tags of a project, the built-in library, GC and reconcile."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import JobSerializer
from portal.audit import Actor
from portal.errors import Forbidden
from portal.models import Job
from projects.api import ProjectScopedMixin
from projects.models import Project
from projects.roles import can
from registries import services
from registries.filters import RepositoryFilterSet, TagFilterSet
from registries.models import GcSchedule, Repository, Tag


class RepositorySerializer(serializers.ModelSerializer):
    """A repository with its project, tag count and pulls."""

    project = serializers.CharField(source="project.name", read_only=True)
    short_name = serializers.CharField(read_only=True)
    tag_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Repository
        fields = ["id", "name", "short_name", "project", "tag_count", "pull_count", "last_pulled", "created", "updated"]
        read_only_fields = fields


class TagSerializer(serializers.ModelSerializer):
    """A tag with the manifest it points at and the command that pulls it."""

    created = serializers.DateTimeField(source="pushed_at", read_only=True)
    pull_command = serializers.SerializerMethodField()

    class Meta:
        model = Tag
        fields = ["name", "digest", "media_type", "size", "created", "pushed_by", "pushed_at", "pull_command"]
        read_only_fields = fields

    def get_pull_command(self, tag: Tag) -> str:
        """`docker pull <portal host>/<project>/<repository>:<tag>`."""
        return f"docker pull {self.context['request'].get_host()}/{tag.repository.name}:{tag.name}"


def _annotated(queryset: QuerySet[Repository]) -> QuerySet[Repository]:
    return queryset.select_related("project").annotate(tag_count=Count("tags")).order_by("name")


class ProjectRepositoryViewSet(
    ProjectScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A project's repositories: members (and anyone on a public project) read; DevOps administrators delete."""

    serializer_class = RepositorySerializer
    filterset_class = RepositoryFilterSet

    project_action = "pull"

    def get_queryset(self) -> QuerySet[Repository]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Repository.objects.none()
        return _annotated(Repository.objects.filter(project=self.project()))

    def get_object(self) -> Repository:
        repository = services.find_repository(self.request.user, self.project(), self.kwargs["repository"])
        return self.get_queryset().get(pk=repository.pk)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_repository(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TagViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Tags of one repository: readers list them; DevOps administrators delete one (its siblings stay)."""

    serializer_class = TagSerializer
    filterset_class = TagFilterSet

    def repository(self) -> Repository:
        """The repository named in the URL, if the caller may pull from its project (else 404)."""
        if not hasattr(self, "_repository"):
            project = get_object_or_404(
                Project.objects.restrict(self.request.user, "pull"), name=self.kwargs["project_name"]
            )
            self._repository = services.find_repository(self.request.user, project, self.kwargs["repository"])
        return self._repository

    def get_queryset(self) -> QuerySet[Tag]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Tag.objects.none()
        return self.repository().tags.select_related("repository__project").order_by("-pushed_at", "name")

    def get_object(self) -> Tag:
        return get_object_or_404(self.get_queryset(), name=self.kwargs["tag"])

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_tag(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class RepositoryLibraryView(generics.ListAPIView):
    """Built-in repositories: every repository the caller may pull, across projects."""

    serializer_class = RepositorySerializer
    filterset_class = RepositoryFilterSet

    def get_queryset(self) -> QuerySet[Repository]:
        return _annotated(Repository.objects.restrict(self.request.user))


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


class GcScheduleSerializer(serializers.ModelSerializer):
    """When garbage collection runs on its own: `off`, or `daily` at `time`."""

    class Meta:
        model = GcSchedule
        fields = ["frequency", "time", "updated"]
        read_only_fields = ["updated"]


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
