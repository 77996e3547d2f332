"""REST API of container hosts and containers under /api/v1/projects/{name}/hosts and /containers."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.utils import translate_validation
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import containers, services
from hosts.api.serializers import (
    ContainerSerializer,
    HostCreateSerializer,
    HostSerializer,
    HostUpdateSerializer,
    HostVerifySerializer,
    ProvisionSerializer,
)
from hosts.docker import HostFacts, normalize_url
from hosts.filters import ContainerFilterSet, HostFilterSet
from hosts.models import Container, ContainerHost, ContainerState
from portal.core.api.serializers import JobDetailSerializer
from portal.core.audit import Actor
from portal.core.errors import DomainError, Invalid
from portal.core.models import Credential, Job
from projects.models import Project
from projects.scoped import (
    ListGetMixin,
    ProjectScopedViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
)

FACTS = inline_serializer(
    "HostFacts",
    {
        "url": serializers.CharField(),
        "kind": serializers.CharField(),
        "tls_mode": serializers.CharField(),
        "is_vic": serializers.BooleanField(),
        "api_version": serializers.CharField(),
        "engine_version": serializers.CharField(),
        "operating_system": serializers.CharField(),
        "cpus": serializers.IntegerField(),
        "memory_bytes": serializers.IntegerField(),
        "containers_running": serializers.IntegerField(),
        "containers_stopped": serializers.IntegerField(),
        "images": serializers.IntegerField(),
    },
)


def _facts_body(facts: HostFacts, kind: str, url: str, credential: Credential | None) -> dict[str, Any]:
    """What Verify found, as the API answers it (without /info's raw answer)."""
    host = ContainerHost(url=url, credential=credential)
    body = {key: value for key, value in facts.__dict__.items() if key != "raw_info"}
    return {"url": url, "kind": kind.strip().lower(), "tls_mode": host.tls_mode, **body}


class HostViewSet(ListGetMixin, ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin, ProjectScopedViewSet):
    """A project's container hosts; POST connects and checks the host before saving it (409: untrusted
    certificate, 502: the exact failure); PATCH renames, changes the credential (verified again), or
    enables/disables; DELETE removes the host from the project, leaving its containers on it alone."""

    model = ContainerHost
    serializer_class = HostSerializer
    create_serializer_class = HostCreateSerializer
    update_serializer_class = HostUpdateSerializer
    filterset_class = HostFilterSet
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    remote_errors = True

    def rows(self, project: Project) -> QuerySet[ContainerHost]:
        hosts = ContainerHost.objects.filter(project=project).select_related("credential", "whitelist_change")
        return hosts.order_by("name", "pk")

    def perform_service_create(self, data: dict[str, Any]) -> ContainerHost:
        fields = {key: data.get(key) for key in ("name", "kind", "url", "credential")}
        return services.add_host(self.actor(), self.project(), **fields)

    def perform_service_update(self, host: ContainerHost, data: dict[str, Any]) -> ContainerHost:
        changes = {"name": data.get("name"), "enabled": data.get("enabled")}
        if "credential" in data:
            changes["credential"] = data["credential"]
        return services.update_host(self.actor(), host, **changes)

    def perform_service_destroy(self, host: ContainerHost) -> None:
        services.remove_host(self.actor(), host)

    @extend_schema(operation_id="projects_hosts_recheck", request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"], url_path="verify")
    def verify(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Connect to the saved host now: its state and facts are updated, and a failure is answered as such."""
        host = services.recheck_host(Actor.from_request(request), self.get_object())
        return Response(HostSerializer(host).data)

    @extend_schema(operation_id="projects_hosts_verify", request=HostVerifySerializer, responses={200: FACTS})
    @action(detail=False, methods=["post"], url_path="verify")
    def verify_new(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Connect to a host that is not saved yet and say what it is, or exactly what went wrong."""
        serializer = HostVerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        credential = data.get("credential")
        facts = services.verify_host(
            Actor.from_request(request), self.project(), kind=data["kind"], url=data["url"], credential=credential
        )
        return Response(_facts_body(facts, data["kind"], normalize_url(data["url"]), credential))


STATS = inline_serializer(
    "ContainerStats",
    {
        "cpu_percent": serializers.FloatField(),
        "memory_used": serializers.IntegerField(),
        "memory_limit": serializers.IntegerField(),
        "memory_percent": serializers.FloatField(),
        "network_rx": serializers.IntegerField(),
        "network_tx": serializers.IntegerField(),
        "taken_at": serializers.DateTimeField(),
    },
)


LOGS = inline_serializer(
    "ContainerLogs",
    {
        "lines": serializers.ListField(child=serializers.DictField()),
        "last": serializers.FloatField(allow_null=True, help_text="pass as ?since= to get only newer lines"),
    },
)


JOB = inline_serializer("ContainerJob", {"job": JobDetailSerializer()})


PROVISIONED = inline_serializer("Provisioned", {"job": JobDetailSerializer(), "container": ContainerSerializer()})


SEARCH_HELP = "part of the name, image, host, state or command, or the start of the id"


def _number(request: Request, name: str, default: float, kind: type = int) -> Any:
    """A numeric query parameter; Invalid when it is not a number."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise Invalid(f"'{name}' must be a number", {name: ["Enter a number."]}) from None


def _job_answer(job: Job) -> dict[str, Any]:
    """The job as it stands now (a job run eagerly has already finished)."""
    job.refresh_from_db()
    return JobDetailSerializer(job).data


class ContainerViewSet(ListGetMixin, ProjectScopedViewSet):
    """A project's containers across its hosts: read, provision, start, stop, restart, remove, logs, stats."""

    model = Container
    serializer_class = ContainerSerializer
    lookup_value_regex = r"[0-9]+"
    remote_errors = True  # logs, stats and image checks ask the host or a registry

    def rows(self, project: Project) -> QuerySet[Container]:
        return Container.objects.filter(host__project=project).select_related("host", "host__project")

    def filter_queryset(self, queryset: QuerySet[Container]) -> QuerySet[Container]:
        """`?q=` (name, image or id), `?host=` (id or name), `?state=`, `?sort=`; removed ones only when asked for."""
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if not params.get("state", "").strip():
            queryset = queryset.exclude(state=ContainerState.REMOVED)
        found = ContainerFilterSet(params, queryset.order_by("name", "pk"))
        if not found.is_valid():
            # An unknown ?sort= key is a 400 naming it, as for every list of the API.
            raise translate_validation(found.errors)
        return found.qs

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description=SEARCH_HELP),
            OpenApiParameter("host", str, description="a host's id or name"),
            OpenApiParameter("state", str, description="running, exited, ...; removed ones show only with removed"),
            OpenApiParameter("sort", str, description="name, image, host, state or created; a leading - reverses"),
        ]
    )
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        """The containers on the project's hosts."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: ContainerSerializer})
    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        """The container's row and, live from its host, `inspect`; when the host cannot say, `error` says why."""
        container = self.get_object()
        body = ContainerSerializer(container).data
        try:
            body["inspect"] = containers.container_details(Actor.from_request(request), container)
        except DomainError as exc:
            body["inspect"], body["error"] = None, exc.message
        return Response(body)

    def _host(self, value: str | None) -> ContainerHost | None:
        """The host named in the body (id or name), which must be one of the project's."""
        if value in (None, ""):
            return None
        text = str(value).strip()
        hosts = ContainerHost.objects.filter(project=self.project()).select_related("credential")
        host = hosts.filter(pk=int(text)).first() if text.isdigit() else hosts.filter(name=text).first()
        if host is None:
            message = f"host '{text}' is not in project '{self.project().name}'"
            raise Invalid(message, {"host": [message]})
        return host

    @extend_schema(request=ProvisionSerializer, responses={202: PROVISIONED})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Provision a container: checked now, then pulled, created and started by a job."""
        serializer = ProvisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = containers.provision(
            Actor.from_request(request),
            self.project(),
            image=data["image"],
            name=data["name"],
            command=data["command"],
            environment=data["environment"],
            ports=data["ports"],
            restart_policy=data["restart_policy"],
            host=self._host(data["host"]),
        )
        container = job.container
        if Container.objects.filter(pk=container.pk).exists():
            container.refresh_from_db()
        body = {"job": _job_answer(job), "container": ContainerSerializer(container).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    def _act(self, request: Request, name: str) -> Response:
        """Start the action's job; 202 with it."""
        job = containers.container_action(Actor.from_request(request), self.get_object(), name)
        return Response({"job": _job_answer(job)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JOB})
    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Remove the container from its host (a job); the row stays, marked removed."""
        return self._act(request, "remove")

    @extend_schema(request=None, responses={202: JOB})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Start the container (a job)."""
        return self._act(request, "start")

    @extend_schema(request=None, responses={202: JOB})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Stop the container (a job)."""
        return self._act(request, "stop")

    @extend_schema(request=None, responses={202: JOB})
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Restart the container (a job)."""
        return self._act(request, "restart")

    @extend_schema(
        parameters=[
            OpenApiParameter("tail", int, description="how many of the last lines (default 200)"),
            OpenApiParameter("since", float, description="only lines after this Unix time (the last answer's last)"),
        ],
        responses={200: LOGS},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, *args: object, **kwargs: object) -> Response:
        """The container's output, live from its host; follow by passing the answer's `last` as `?since=`."""
        tail = _number(request, "tail", 200)
        since = _number(request, "since", 0.0, float)
        lines = containers.container_logs(Actor.from_request(request), self.get_object(), tail=tail, since=since)
        stamps = [line.time for line in lines if line.time is not None]
        body = {
            "lines": [{"stream": line.stream, "time": line.time, "text": line.text} for line in lines],
            "last": stamps[-1].timestamp() if stamps else (since or None),
        }
        return Response(body)

    @extend_schema(responses={200: STATS})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, *args: object, **kwargs: object) -> Response:
        """One live resource sample: CPU %, memory used/limit, network in/out."""
        sample = containers.container_stats(Actor.from_request(request), self.get_object())
        return Response(sample.__dict__)

    @extend_schema(responses={200: JobDetailSerializer})
    @action(detail=False, methods=["get"], url_path=r"jobs/(?P<job_id>[0-9]+)")
    def job(self, request: Request, *args: object, **kwargs: object) -> Response:
        """A provisioning or action job of the project's containers (the system job list is for portal admins)."""
        project = self.project()
        job = get_object_or_404(
            Job.objects.filter(kind__in=containers.JOB_KINDS, target__startswith=f"{project.name}/"),
            pk=int(kwargs["job_id"]),
        )
        return Response(JobDetailSerializer(job).data)
