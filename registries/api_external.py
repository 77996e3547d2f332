"""REST API of external registries and image search: /registries, /registries/verify, /projects/{name}/registries,
/projects/{name}/images?q= and /projects/{name}/images/{registry}/{repository}/tags."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.audit import Actor
from portal.errors import Forbidden
from portal.models import Credential
from projects.models import Project
from projects.roles import can, is_portal_admin
from registries import external_services, search
from registries.external import parse_address
from registries.models import ExternalRegistry


class ExternalRegistrySerializer(serializers.ModelSerializer):
    """A registry: its address (with namespace), credential by name, what Verify found; never a secret."""

    credential = serializers.SlugRelatedField(
        slug_field="name", queryset=Credential.objects.all(), required=False, allow_null=True
    )
    project = serializers.CharField(source="project.name", read_only=True, default=None)
    is_global = serializers.BooleanField(read_only=True)

    class Meta:
        model = ExternalRegistry
        fields = [
            "name", "address", "namespace", "insecure", "enabled", "credential", "project", "is_global",
            "api_version", "auth_type", "last_verified", "created", "created_by",
        ]  # fmt: skip
        read_only_fields = ["namespace", "api_version", "auth_type", "last_verified", "created", "created_by"]

    def to_representation(self, instance: ExternalRegistry) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["global"] = data.pop("is_global")
        return data


class VerifySerializer(serializers.Serializer):
    """What Verify needs: the address, optionally a credential, insecure, and the project it is for."""

    address = serializers.CharField()
    credential = serializers.SlugRelatedField(
        slug_field="name", queryset=Credential.objects.all(), required=False, allow_null=True
    )
    insecure = serializers.BooleanField(default=False)
    project = serializers.SlugRelatedField(
        slug_field="name", queryset=Project.objects.all(), required=False, allow_null=True
    )


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

    @extend_schema(request=VerifySerializer, responses={200: FOUND})
    def post(self, request: Request) -> Response:
        """Verify a registry address with an optional credential."""
        serializer = VerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = data.get("project")
        allowed = can(request.user, "manage_registries", project) if project else is_portal_admin(request.user)
        if not allowed:
            raise Forbidden("You do not have permission to add registries here.")
        parsed = parse_address(data["address"], data["insecure"])
        found = external_services.verify(parsed.normalized, data.get("credential"), data["insecure"])
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

    @extend_schema(responses={200: TAGS})
    def get(self, request: Request, project_name: str, registry: str, repository: str) -> Response:
        """The repository's tags."""
        project = _visible_project(request, project_name, "pull")
        names = search.tags(request.user, project, registry, repository)
        return Response({"registry": registry, "repository": repository, "tags": names})
