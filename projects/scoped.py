"""Pages and API resources that live inside one project: the project named in the URL, as the role matrix allows.

Every app's project tabs (UI) and `/api/v1/projects/{name}/...` resources (API) start here, so an
app never imports another app's views: a project the caller may not see is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from portal.core.audit import Actor
from projects.models import Project
from projects.roles import can, effective_role


def visible_project(request: HttpRequest, name: str) -> Project:
    """The named project if the user may see it; 404 otherwise."""
    return get_object_or_404(Project.objects.restrict(request.user), name=name)


def project_context(request: HttpRequest, project: Project, tab: str) -> dict[str, Any]:
    """What every tab of the project page shows: the project, the tab, the user's role and rights."""
    return {
        "project": project,
        "tab": tab,
        "my_role": effective_role(request.user, project),
        "can_manage_members": can(request.user, "manage_members", project),
        "can_manage_settings": can(request.user, "manage_settings", project),
        # The Replication tab: the project's administrators follow and run its rules (portal admins manage them).
        "can_follow_replication": can(request.user, "replicate", project),
    }


class ProjectScopedMixin:
    """For viewsets under /projects/{project_name}/: the project, if the caller may take `project_action` on it."""

    project_action = "view"

    def project(self) -> Project:
        """The project named in the URL, if the caller may take `project_action` on it (else 404)."""
        if not hasattr(self, "_project"):
            visible = Project.objects.restrict(self.request.user, self.project_action)
            self._project = get_object_or_404(visible, name=self.kwargs["project_name"])
        return self._project


class ServiceViewSet(viewsets.GenericViewSet):
    """The base of an API resource whose writes go through the app's services.

    A write parses its input serializer (`validated`), calls the service with the acting user (`actor`) and
    answers the output serializer (`answer`), so permission checks, validation and the audit event stay in
    the service. The Service*Mixins below build create, update and delete on it.
    """

    def actor(self) -> Actor:
        """Who is acting, for the service and its audit event."""
        return Actor.from_request(self.request)

    def validated(self, serializer_class: type[serializers.Serializer] | None, **kwargs: Any) -> dict[str, Any]:
        """The request body checked by the input serializer (the answering one when none is named)."""
        serializer_class = serializer_class or self.get_serializer_class()
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def answer(self, instance: models.Model, code: int = status.HTTP_200_OK) -> Response:
        """The row as the resource shows it."""
        return Response(self.get_serializer(instance).data, status=code)


class ProjectScopedViewSet(ProjectScopedMixin, ServiceViewSet):
    """The base of an API resource under /projects/{project_name}/.

    A subclass names `model` and `serializer_class` (what is answered), narrows `rows(project)`
    when the rows are not simply the project's own, and adds the Service*Mixins it offers. List
    and get come from the rows of the project the caller may see (`project_action`), filtered by
    `filterset_class`; writes go through the app's service (ServiceViewSet).
    """

    model: type[models.Model]

    def rows(self, project: Project) -> QuerySet:
        """The resource's rows in the project."""
        return self.model.objects.filter(project=project)

    def get_queryset(self) -> QuerySet:
        """The rows of the project named in the URL (none while the schema is generated)."""
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return self.model.objects.none()
        return self.rows(self.project())


class ListGetMixin(mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """GET of the list (paginated, filtered) and of one row."""


class ServiceCreateMixin:
    """POST: `create_serializer_class` (or the answering serializer) → `perform_service_create(data)` → 201."""

    create_serializer_class: type[serializers.Serializer] | None = None

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Create the row through the app's service."""
        data = self.validated(self.create_serializer_class)
        return self.answer(self.perform_service_create(data), status.HTTP_201_CREATED)

    def perform_service_create(self, data: dict[str, Any]) -> models.Model:
        """Call the service that creates the row."""
        raise NotImplementedError


class ServiceUpdateMixin:
    """PATCH (and PUT, the same here): `update_serializer_class` → `perform_service_update(row, data)` → 200."""

    update_serializer_class: type[serializers.Serializer] | None = None

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Change the row through the app's service."""
        instance = self.get_object()
        data = self.validated(self.update_serializer_class, partial=True)
        return self.answer(self.perform_service_update(instance, data))

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """PUT changes what it names, as PATCH does."""
        return self.partial_update(request, *args, **kwargs)

    def perform_service_update(self, instance: models.Model, data: dict[str, Any]) -> models.Model:
        """Call the service that changes the row."""
        raise NotImplementedError


class ServiceDestroyMixin:
    """DELETE: `perform_service_destroy(row)` → 204."""

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Delete the row through the app's service."""
        self.perform_service_destroy(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def perform_service_destroy(self, instance: models.Model) -> None:
        """Call the service that deletes the row."""
        raise NotImplementedError
