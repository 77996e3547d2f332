"""REST API of a project's container hosts: /projects/{name}/hosts (+ /{id}, /verify, /{id}/verify).

Anyone who may see the project reads its hosts; its DevOps administrators (and portal admins) add,
change, verify and remove them. A project the caller may not see is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import services
from hosts.docker import HostFacts, normalize_url
from hosts.filters import HostFilterSet
from hosts.models import ContainerHost, HostKind, HostState
from portal.audit import Actor
from portal.models import Credential
from projects.api import ProjectScopedMixin


def _credential_field() -> serializers.SlugRelatedField:
    """A credential referenced by its name (null for none)."""
    return serializers.SlugRelatedField(
        slug_field="name", queryset=Credential.objects.all(), required=False, allow_null=True
    )


SEARCH_HELP = "part of the name, URL, engine version, last error, state or type"


class HostSerializer(serializers.ModelSerializer):
    """A host as the Container Hosts page shows it: endpoint, TLS mode, state and the facts last collected."""

    credential = _credential_field()
    # A plain string in the schema: an enum here would clash by name with the credentials' `kind` enum.
    kind = serializers.CharField(help_text="docker or vch")
    tls_mode = serializers.CharField(read_only=True)
    enabled = serializers.SerializerMethodField()

    class Meta:
        model = ContainerHost
        fields = [
            "id", "name", "kind", "url", "credential", "tls_mode", "state", "enabled", "last_error", "last_seen",
            "last_collected", "engine_version", "api_version", "operating_system", "cpus", "memory_bytes",
            "containers_running", "containers_stopped", "images", "created", "created_by",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("name", "kind", "url", "credential")]

    def get_enabled(self, host: ContainerHost) -> bool:
        """False while an administrator has disabled the host."""
        return host.state != HostState.DISABLED


class HostCreateSerializer(serializers.Serializer):
    """What +Host takes: name, type, endpoint URL and an optional certificate credential."""

    name = serializers.CharField(allow_blank=True, trim_whitespace=True)
    kind = serializers.CharField(default=HostKind.DOCKER, help_text="docker or vch")
    url = serializers.CharField(help_text="https://host:2376 (TLS) or http://host:2375 (no TLS)")
    credential = _credential_field()


class HostUpdateSerializer(serializers.Serializer):
    """What a host's edit takes: a new name, another credential (or null), enabled or disabled."""

    name = serializers.CharField(required=False)
    credential = _credential_field()
    enabled = serializers.BooleanField(required=False)


class HostVerifySerializer(serializers.Serializer):
    """What Verify checks before a host is saved: type, endpoint URL and optional credential."""

    kind = serializers.CharField(default=HostKind.DOCKER)
    url = serializers.CharField()
    credential = _credential_field()


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


class HostViewSet(ProjectScopedMixin, viewsets.ModelViewSet):
    """A project's container hosts; POST connects and checks the host before saving it."""

    serializer_class = HostSerializer
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[ContainerHost]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return ContainerHost.objects.none()
        hosts = ContainerHost.objects.filter(project=self.project()).select_related("credential")
        return HostFilterSet({"q": self.request.query_params.get("q", "")}, hosts).qs.order_by("name", "pk")

    @extend_schema(parameters=[OpenApiParameter("q", str, description=SEARCH_HELP)])
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        """The project's hosts, filtered by `?q=`."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=HostCreateSerializer, responses={201: HostSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Add a host: 201 once it answered as the type given, else the exact failure (409: untrusted certificate)."""
        serializer = HostCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        host = services.add_host(
            Actor.from_request(request),
            self.project(),
            name=data["name"],
            kind=data["kind"],
            url=data["url"],
            credential=data.get("credential"),
        )
        return Response(HostSerializer(host).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=HostUpdateSerializer, responses={200: HostSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Rename, change the credential (verified again), or enable/disable the host."""
        host = self.get_object()
        serializer = HostUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes: dict[str, Any] = {"name": data.get("name"), "enabled": data.get("enabled")}
        if "credential" in data:
            changes["credential"] = data["credential"]
        host = services.update_host(Actor.from_request(request), host, **changes)
        return Response(HostSerializer(host).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Remove the host from the project; its containers on the host are not touched."""
        services.remove_host(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

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
