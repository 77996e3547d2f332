"""REST API of a project's containers: /projects/{name}/containers (+ /{id}, /{id}/logs, /{id}/stats,
/{id}/start|stop|restart, DELETE /{id}) and POST to provision; /projects/{name}/containers/jobs/{job} shows
how a container job went.

Anyone who may see the project reads its containers; developers and DevOps administrators provision
and operate them. A project the caller may not see is a 404. Provisioning and actions answer 202 with
the job that carries them out.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import containers as services
from hosts.filters import ContainerFilterSet
from hosts.models import Container, ContainerHost, ContainerState
from portal.api import JobDetailSerializer
from portal.audit import Actor
from portal.errors import DomainError, Invalid
from portal.models import Job
from projects.api import ProjectScopedMixin


class ContainerSerializer(serializers.ModelSerializer):
    """A container as the Containers page lists it: name, image, host, state, ports, who provisioned it."""

    host = serializers.SerializerMethodField()
    short_id = serializers.CharField(read_only=True)

    class Meta:
        model = Container
        fields = [
            "id", "container_id", "short_id", "name", "image", "command", "host", "state", "status", "ports",
            "created", "provisioned", "provisioned_by", "last_seen", "removed",
        ]  # fmt: skip
        read_only_fields = fields

    def get_host(self, container: Container) -> dict[str, Any]:
        """The host by id and name."""
        return {"id": container.host_id, "name": container.host.name}


class ProvisionSerializer(serializers.Serializer):
    """What provisioning takes: the image and, optionally, name, command, environment, ports, policy, host."""

    image = serializers.CharField(help_text="an image reference, e.g. wharf.example:8282/project/app:1.0")
    name = serializers.CharField(required=False, allow_blank=True, default="")
    command = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    environment = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, default=list
    )
    ports = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="[IP:][HOST:]CONTAINER[/tcp|udp]"
    )
    restart_policy = serializers.CharField(
        required=False, default="no", help_text="no, always, on-failure, unless-stopped"
    )
    host = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="a host's id or name; none: the least loaded ON host"
    )


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


class ContainerViewSet(
    ProjectScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A project's containers across its hosts: read, provision, start, stop, restart, remove, logs, stats."""

    serializer_class = ContainerSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Container]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Container.objects.none()
        return Container.objects.filter(host__project=self.project()).select_related("host", "host__project")

    def filter_queryset(self, queryset: QuerySet[Container]) -> QuerySet[Container]:
        """`?q=` (name, image or id), `?host=` (id or name), `?state=`; removed ones only when asked for."""
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if not params.get("state", "").strip():
            queryset = queryset.exclude(state=ContainerState.REMOVED)
        return ContainerFilterSet(params, queryset).qs.order_by("name", "pk")

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description=SEARCH_HELP),
            OpenApiParameter("host", str, description="a host's id or name"),
            OpenApiParameter("state", str, description="running, exited, ...; removed ones show only with removed"),
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
            body["inspect"] = services.container_details(Actor.from_request(request), container)
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
        job = services.provision(
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
        job = services.container_action(Actor.from_request(request), self.get_object(), name)
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
        lines = services.container_logs(Actor.from_request(request), self.get_object(), tail=tail, since=since)
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
        sample = services.container_stats(Actor.from_request(request), self.get_object())
        return Response(sample.__dict__)

    @extend_schema(responses={200: JobDetailSerializer})
    @action(detail=False, methods=["get"], url_path=r"jobs/(?P<job_id>[0-9]+)")
    def job(self, request: Request, *args: object, **kwargs: object) -> Response:
        """A provisioning or action job of the project's containers (the system job list is for portal admins)."""
        project = self.project()
        job = get_object_or_404(
            Job.objects.filter(kind__in=services.JOB_KINDS, target__startswith=f"{project.name}/"),
            pk=int(kwargs["job_id"]),
        )
        return Response(JobDetailSerializer(job).data)
