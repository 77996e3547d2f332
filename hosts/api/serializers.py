"""API serializers of container hosts and containers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hosts.models import Container, ContainerHost, HostKind, HostState, WhitelistChange
from portal.core.models import Credential


def _credential_field() -> serializers.SlugRelatedField:
    """A credential referenced by its name (null for none)."""
    return serializers.SlugRelatedField(
        slug_field="name", queryset=Credential.objects.all(), required=False, allow_null=True
    )


class RegistryWhitelistSerializer(serializers.Serializer):
    """A VCH's registry configuration as its /info last reported it."""

    mode = serializers.CharField(source="whitelist_mode", help_text='"enabled", "disabled", or "" when not reported')
    remote = serializers.BooleanField(source="whitelist_remote", help_text="taken from a management portal")
    registries = serializers.ListField(source="whitelisted_registries", child=serializers.CharField())
    insecure = serializers.ListField(source="insecure_registries", child=serializers.CharField())


class WhitelistChangeSerializer(serializers.ModelSerializer):
    """What content trust asks of a VCH's whitelist: state, current and required lists, the command, the reason."""

    command = serializers.CharField(read_only=True, help_text="the vic-machine options to make the change, if any")

    class Meta:
        model = WhitelistChange
        fields = ["state", "current_mode", "current", "required", "command", "reason", "updated"]
        read_only_fields = fields


class HostSerializer(serializers.ModelSerializer):
    """A host as the Container Hosts page shows it: endpoint, TLS mode, state and the facts last collected."""

    credential = _credential_field()
    # A plain string in the schema: an enum here would clash by name with the credentials' `kind` enum.
    kind = serializers.CharField(help_text="docker or vch")
    tls_mode = serializers.CharField(read_only=True)
    enabled = serializers.SerializerMethodField()
    registry_whitelist = serializers.SerializerMethodField()
    content_trust_whitelist = serializers.SerializerMethodField()

    class Meta:
        model = ContainerHost
        fields = [
            "id", "name", "kind", "url", "credential", "tls_mode", "state", "enabled", "last_error", "last_seen",
            "last_collected", "engine_version", "api_version", "operating_system", "cpus", "memory_bytes",
            "containers_running", "containers_stopped", "images", "registry_whitelist", "content_trust_whitelist",
            "created", "created_by",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("name", "kind", "url", "credential")]

    def get_enabled(self, host: ContainerHost) -> bool:
        """False while an administrator has disabled the host."""
        return host.state != HostState.DISABLED

    @extend_schema_field(RegistryWhitelistSerializer(allow_null=True))
    def get_registry_whitelist(self, host: ContainerHost) -> dict[str, Any] | None:
        """A VCH's registry whitelist as last collected; null for a Docker host."""
        return RegistryWhitelistSerializer(host).data if host.kind == HostKind.VCH else None

    @extend_schema_field(WhitelistChangeSerializer(allow_null=True))
    def get_content_trust_whitelist(self, host: ContainerHost) -> dict[str, Any] | None:
        """What content trust in the project asks of the VCH's whitelist; null when it never asked anything."""
        try:
            change = host.whitelist_change
        except ObjectDoesNotExist:
            return None
        return WhitelistChangeSerializer(change).data


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
