"""REST API of replication: endpoints and rules (portal admins manage them), executions and their tasks.

A project's administrators see the rules and executions of their project and may run them; anything else they
ask about is a 404. Every change goes through replication.services, which checks who may do it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.core.api.serializers import JobDetailSerializer
from portal.core.errors import Invalid
from portal.core.models import JobState
from portal.core.pagination import CursorPagination
from projects.scoped import (
    ListGetMixin,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
    ServiceViewSet,
)
from replication import services
from replication.api.serializers import (
    EndpointInputSerializer,
    EndpointSerializer,
    ExecutionSerializer,
    PingSerializer,
    ProbeSerializer,
    RuleInputSerializer,
    RuleSerializer,
    TaskSerializer,
)
from replication.filters import EndpointFilterSet, ExecutionFilterSet, RuleFilterSet, TaskFilterSet
from replication.models import Endpoint, Execution, Rule, Task

BY_NAME = {"lookup_field": "name", "lookup_value_regex": r"[^/]+"}
WRITES = ["get", "post", "patch", "put", "delete", "head", "options"]


def _fake(view: Any) -> bool:
    """True while drf-spectacular generates the schema (there is no real caller)."""
    return getattr(view, "swagger_fake_view", False)


class EndpointViewSet(ListGetMixin, ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin, ServiceViewSet):
    """Replication endpoints (Administration > Replication): portal admins only; saving tests the connection."""

    lookup_field, lookup_value_regex = BY_NAME["lookup_field"], BY_NAME["lookup_value_regex"]
    http_method_names = WRITES
    remote_errors = True  # saving and Test Connection reach the endpoint
    serializer_class = EndpointSerializer
    create_serializer_class = update_serializer_class = EndpointInputSerializer
    filterset_class = EndpointFilterSet

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not _fake(self):
            services.require_admin(self.actor())

    def get_queryset(self) -> QuerySet[Endpoint]:
        rules = Prefetch("rules", queryset=Rule.objects.order_by("name").only("pk", "name", "endpoint_id"))
        return Endpoint.objects.select_related("credential").prefetch_related(rules)

    def perform_service_create(self, data: dict[str, Any]) -> Endpoint:
        endpoint = services.create_endpoint(
            self.actor(),
            data.pop("name"),
            data.pop("url"),
            data.pop("kind"),
            username=data.get("username", ""),
            password=data.get("password", ""),
            verify_remote_cert=data["verify_remote_cert"],
        )
        return self.get_queryset().get(pk=endpoint.pk)

    def perform_service_update(self, endpoint: Endpoint, data: dict[str, Any]) -> Endpoint:
        endpoint = services.update_endpoint(self.actor(), endpoint, **data)
        return self.get_queryset().get(pk=endpoint.pk)

    def perform_service_destroy(self, endpoint: Endpoint) -> None:
        services.delete_endpoint(self.actor(), endpoint)

    @extend_schema(request=PingSerializer, responses={200: ProbeSerializer})
    @action(detail=False, methods=["post"])
    def ping(self, request: Request) -> Response:
        """Test Connection without saving; naming a saved `endpoint` reuses its password when none is sent."""
        data = self.validated(PingSerializer)
        endpoint = data.pop("endpoint", None)
        url = data.pop("url", None) or (endpoint.url if endpoint else None)
        if not url:
            raise Invalid("Give the URL to test, or a saved endpoint.", {"url": ["This field is required."]})
        found = services.test_connection(self.actor(), url, endpoint=endpoint, **data)
        return Response(found.as_dict())


class RuleViewSet(ListGetMixin, ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin, ServiceViewSet):
    """Replication rules: portal admins manage them; a project's administrators see and run the project's."""

    lookup_field, lookup_value_regex = BY_NAME["lookup_field"], BY_NAME["lookup_value_regex"]
    http_method_names = WRITES
    serializer_class = RuleSerializer
    create_serializer_class = update_serializer_class = RuleInputSerializer
    filterset_class = RuleFilterSet

    def get_queryset(self) -> QuerySet[Rule]:
        if _fake(self):
            return Rule.objects.none()
        latest = Execution.objects.select_related("job").order_by("-created", "-id")[:1]
        return services.visible_rules(self.request.user).prefetch_related(
            Prefetch("executions", queryset=latest, to_attr="latest")
        )

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Who may write is known before the body is read: a rule the caller cannot see is a 404, one they see
        # (a project admin) a 403, and neither learns anything from a 400 about the body.
        if self.action in ("create", "update", "partial_update", "destroy") and not _fake(self):
            if self.action != "create":
                self.get_object()
            services.require_admin(self.actor())

    def perform_service_create(self, data: dict[str, Any]) -> Rule:
        rule = services.create_rule(self.actor(), data.pop("name"), data.pop("project"), data.pop("endpoint"), **data)
        return self.get_queryset().get(pk=rule.pk)

    @transaction.atomic
    def perform_service_update(self, rule: Rule, data: dict[str, Any]) -> Rule:
        """`enabled` goes through set_rule_enabled (disabling stops running jobs), the rest through update_rule:
        disabling comes first and enabling last, so one PATCH may disable, edit and enable a rule."""
        enabled = data.pop("enabled", None)
        if enabled is False:
            rule = services.set_rule_enabled(self.actor(), rule, False)
        if data or enabled is None:
            rule = services.update_rule(self.actor(), rule, **data)
        if enabled is True:
            rule = services.set_rule_enabled(self.actor(), rule, True)
        return self.get_queryset().get(pk=rule.pk)

    def perform_service_destroy(self, rule: Rule) -> None:
        services.delete_rule(self.actor(), rule)

    @extend_schema(request=None, responses={202: ExecutionSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Replicate now, whatever the rule's trigger: an execution starts."""
        execution = services.run_rule(self.actor(), self.get_object())
        return _started(execution)


def executions_with_counts(executions: QuerySet[Execution]) -> QuerySet[Execution]:
    """The executions with their tasks counted by the state of the tasks' jobs (one query for a whole page)."""
    state = "tasks__job__state"
    return executions.select_related("rule__project").annotate(
        tasks_total=Count("tasks"),
        tasks_pending=Count("tasks", filter=Q(**{state: JobState.PENDING})),
        tasks_running=Count("tasks", filter=Q(**{f"{state}__in": [JobState.RUNNING, JobState.RETRYING]})),
        tasks_succeeded=Count("tasks", filter=Q(**{state: JobState.SUCCEEDED})),
        tasks_failed=Count("tasks", filter=Q(**{state: JobState.FAILED})),
        tasks_stopped=Count("tasks", filter=Q(**{state: JobState.STOPPED})),
    )


def _started(execution: Execution) -> Response:
    """202 with the execution as the executions API shows it (its tasks counted afresh)."""
    shown = executions_with_counts(Execution.objects.filter(pk=execution.pk)).select_related("job").get()
    return Response(ExecutionSerializer(shown).data, status=status.HTTP_202_ACCEPTED)


class ExecutionViewSet(ListGetMixin, ServiceViewSet):
    """Executions of the rules the caller sees, newest first (paged by `?cursor=`); stop one, retry its failures."""

    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilterSet
    pagination_class = CursorPagination

    def get_queryset(self) -> QuerySet[Execution]:
        if _fake(self):
            return Execution.objects.none()
        return executions_with_counts(services.visible_executions(self.request.user))

    @extend_schema(request=None, responses={202: ExecutionSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Stop the execution: tasks not started end now, running ones at their next blob."""
        return _started(services.stop_execution(self.actor(), self.get_object()))

    @extend_schema(request=None, responses={202: ExecutionSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Start a new execution of the rule for the repositories whose tasks did not succeed."""
        return _started(services.retry_failed(self.actor(), self.get_object()))


class TaskViewSet(ListGetMixin, ServiceViewSet):
    """The tasks of one execution (one per repository), and each task's log."""

    serializer_class = TaskSerializer
    filterset_class = TaskFilterSet

    def execution(self) -> Execution:
        """The execution named in the URL, if the caller sees its rule (else 404)."""
        if not hasattr(self, "_execution"):
            visible = services.visible_executions(self.request.user)
            self._execution = get_object_or_404(visible, pk=self.kwargs["execution_id"])
        return self._execution

    def get_queryset(self) -> QuerySet[Task]:
        if _fake(self):
            return Task.objects.none()
        return self.execution().tasks.select_related("job")

    @extend_schema(responses={200: JobDetailSerializer})
    @action(detail=True, methods=["get"])
    def log(self, request: Request, *args: object, **kwargs: object) -> Response:
        """The task's job with its whole log (state and progress beside it, to follow it until it ends)."""
        return Response(JobDetailSerializer(self.get_object().job).data)
