"""REST API of projects and members: /projects, /projects/{name}, /projects/{name}/members."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from portal import directory
from portal.audit import Actor
from portal.errors import Forbidden, Invalid
from projects import services
from projects.filters import ProjectFilterSet
from projects.models import Membership, Project, Role, Severity
from projects.roles import can, roles_by_project


class ProjectSerializer(serializers.ModelSerializer):
    """A project with its configuration, member count and the caller's role."""

    name = serializers.CharField()
    member_count = serializers.IntegerField(read_only=True)
    current_user_role = serializers.SerializerMethodField()
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)

    class Meta:
        model = Project
        fields = [
            "id", "name", "public", "content_trust", "prevent_vulnerable", "severity", "auto_scan",
            "created", "created_by", "member_count", "current_user_role",
        ]  # fmt: skip
        read_only_fields = ["id", "created", "created_by"]

    def get_current_user_role(self, project: Project) -> str | None:
        """The caller's effective role in the project, if any (one query for a whole page)."""
        if "roles" not in self.context:
            self.context["roles"] = roles_by_project(self.context["request"].user)
        role = self.context["roles"].get(project.pk)
        return role.value if role else None


class ProjectViewSet(viewsets.ModelViewSet):
    """Projects the caller may see; portal admins create and delete, project admins configure."""

    serializer_class = ProjectSerializer
    filterset_class = ProjectFilterSet
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        return (
            Project.objects.restrict(self.request.user, "view")
            .annotate(member_count=Count("memberships"))
            .order_by("name")
        )

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = services.create_project(Actor.from_request(request), data.pop("name"), **data)
        return Response(self.get_serializer(self._annotated(project)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        project = self.get_object()
        serializer = self.get_serializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "name" in data and data.pop("name") != project.name:
            raise Invalid("A project cannot be renamed.", {"name": ["A project cannot be renamed."]})
        services.update_project(Actor.from_request(request), project, **data)
        return Response(self.get_serializer(self._annotated(project)).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_project(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _annotated(self, project: Project) -> Project:
        return self.get_queryset().get(pk=project.pk)


class MemberSerializer(serializers.ModelSerializer):
    """A member: `{"user": "alice"}` or `{"group": "devs"}` with a role."""

    user = serializers.CharField(required=False, allow_null=True, source="user.username")
    group = serializers.CharField(required=False, allow_null=True, source="group.name")
    role = serializers.ChoiceField(choices=Role.choices)
    member_type = serializers.CharField(read_only=True)
    member_name = serializers.CharField(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "group", "member_type", "member_name", "role", "created"]
        read_only_fields = ["id", "created"]


class ProjectScopedMixin:
    """For viewsets under /projects/{project_name}/: the project, if the caller may take `project_action` on it."""

    project_action = "view"

    def project(self) -> Project:
        """The project named in the URL, if the caller may take `project_action` on it (else 404)."""
        if not hasattr(self, "_project"):
            visible = Project.objects.restrict(self.request.user, self.project_action)
            self._project = get_object_or_404(visible, name=self.kwargs["project_name"])
        return self._project


class MemberViewSet(ProjectScopedMixin, viewsets.ModelViewSet):
    """Members of one project: members read; DevOps administrators add, change and remove."""

    serializer_class = MemberSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Membership.objects.none()
        return self.project().memberships.select_related("user", "group", "project")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        project = self.project()
        if not can(request.user, "manage_members", project):
            raise Forbidden("Only the project's DevOps administrators may add members.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user_name, group_name = data.get("user", {}).get("username"), data.get("group", {}).get("name")
        if bool(user_name) == bool(group_name):
            raise Invalid("Give either a user or a group.", {"user": ["Give either a user or a group."]})
        user = directory.ensure_user(user_name) if user_name else None
        group = directory.ensure_group(group_name) if group_name else None
        membership = services.add_member(Actor.from_request(request), project, data["role"], user=user, group=group)
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        membership = services.find_member(self.project(), int(kwargs["pk"]))
        role = request.data.get("role")
        if not role:
            raise Invalid("A role is required.", {"role": ["This field is required."]})
        services.change_member_role(Actor.from_request(request), membership, role)
        return Response(self.get_serializer(membership).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        membership = services.find_member(self.project(), int(kwargs["pk"]))
        services.remove_member(Actor.from_request(request), membership)
        return Response(status=status.HTTP_204_NO_CONTENT)
