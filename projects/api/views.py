"""REST API of projects and members: /projects, /projects/{name}, /projects/{name}/members, and
/users|groups/{name}/projects."""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core import directory
from portal.core.api.serializers import ProjectRoleSerializer
from portal.core.audit import Actor
from portal.core.errors import Forbidden, Invalid, NotFound
from portal.core.identities import Disclosure, project_roles
from portal.core.models import User
from portal.core.services import admin_subject
from projects import services
from projects.api.serializers import MemberRoleSerializer, MemberSerializer, ProjectSerializer
from projects.filters import MemberFilterSet, ProjectFilterSet
from projects.models import Membership, Project
from projects.roles import can
from projects.scoped import (
    ListGetMixin,
    ProjectScopedViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
)


class ProjectViewSet(viewsets.ModelViewSet):
    """Projects the caller may see; portal admins create and delete, project admins configure."""

    serializer_class = ProjectSerializer
    filterset_class = ProjectFilterSet
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.restrict(self.request.user, "view").with_member_counts()

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


class MemberViewSet(ListGetMixin, ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin, ProjectScopedViewSet):
    """Members of one project: members read; DevOps administrators add, change and remove."""

    model = Membership
    serializer_class = MemberSerializer
    update_serializer_class = MemberRoleSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    filterset_class = MemberFilterSet

    def rows(self, project: Project) -> QuerySet[Membership]:
        # As the Members tab: groups first, then users by name (`?sort=` changes it), the pk keeping pages apart.
        members = project.memberships.select_related("user", "group", "project")
        return members.order_by(F("group__name").asc(nulls_last=True), "user__username", "pk")

    def get_object(self) -> Membership:
        # A member id is a number; anything else names no member (a 404, as an id that does not exist).
        member_id = str(self.kwargs["pk"])
        if not (member_id.isascii() and member_id.isdigit()):
            raise NotFound("No such member in this project.")
        return services.find_member(self.project(), int(member_id))

    def perform_service_create(self, data: dict[str, Any]) -> Membership:
        project = self.project()
        if not can(self.request.user, "manage_members", project):
            raise Forbidden("Only the project's DevOps administrators may add members.")
        user_name, group_name = data.get("user", {}).get("username"), data.get("group", {}).get("name")
        if bool(user_name) == bool(group_name):
            raise Invalid("Give either a user or a group.", {"user": ["Give either a user or a group."]})
        user = directory.ensure_user(user_name) if user_name else None
        group = directory.ensure_group(group_name) if group_name else None
        return services.add_member(self.actor(), project, data["role"], user=user, group=group)

    def perform_service_update(self, membership: Membership, data: dict[str, Any]) -> Membership:
        if not data.get("role"):
            raise Invalid("A role is required.", {"role": ["This field is required."]})
        services.change_member_role(self.actor(), membership, data["role"])
        return membership

    def perform_service_destroy(self, membership: Membership) -> None:
        services.remove_member(self.actor(), membership)


class MemberProjectsView(APIView):
    """`/users/{name}/projects` and `/groups/{name}/projects`: a user's or group's project roles; PUT replaces them."""

    kind = "user"

    @extend_schema(responses=ProjectRoleSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        """The user's projects and roles (the user themself, or whoever may look users up); groups have no GET route."""
        if name != request.user.get_username() and not can(request.user, "view_project_users"):
            raise Forbidden("Only administrators may list users.")
        user = get_object_or_404(User, username=name)
        return Response(Disclosure.to(request.user).roles(user.membership_set.select_related("project")))

    @extend_schema(request=ProjectRoleSerializer(many=True), responses=ProjectRoleSerializer(many=True))
    def put(self, request: Request, name: str) -> Response:
        """Replace the subject's project roles with the body's list (portal admins)."""
        actor = Actor.from_request(request)
        subject = admin_subject(actor, self.kind, name)
        serializer = ProjectRoleSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        pairs = [(item["project"], item["role"]) for item in serializer.validated_data]
        memberships = services.set_member_projects(actor, pairs, **{self.kind: subject})
        return Response(project_roles(memberships))
