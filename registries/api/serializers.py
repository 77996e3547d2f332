"""API serializers of repositories, tags, garbage collection and external registries."""

from __future__ import annotations

from rest_framework import serializers

from portal.core.api.serializers import ClockTimeField
from portal.core.models import Credential
from projects.models import Project
from registries.models import ExternalRegistry, GcSchedule, Repository, Tag


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


class GcScheduleSerializer(serializers.ModelSerializer):
    """When garbage collection runs on its own: `off`, or `daily` at `time`."""

    time = ClockTimeField(required=False)

    class Meta:
        model = GcSchedule
        fields = ["frequency", "time", "updated"]
        read_only_fields = ["updated"]


class ExternalRegistrySerializer(serializers.ModelSerializer):
    """A registry: its address (with namespace), credential by name, what Verify found; never a secret."""

    credential = serializers.SlugRelatedField(
        slug_field="name", queryset=Credential.objects.all(), required=False, allow_null=True
    )
    project = serializers.CharField(source="project.name", read_only=True, default=None, allow_null=True)

    class Meta:
        model = ExternalRegistry
        fields = [
            "name", "address", "namespace", "insecure", "enabled", "credential", "project",
            "api_version", "auth_type", "last_verified", "created", "created_by",
        ]  # fmt: skip
        read_only_fields = ["namespace", "api_version", "auth_type", "last_verified", "created", "created_by"]

    def get_fields(self) -> dict[str, serializers.Field]:
        # `global` (a Python keyword, so not a class attribute) is what the UI and clients read; declaring
        # the field under that name puts it in the schema too.
        fields = super().get_fields()
        fields["global"] = serializers.BooleanField(source="is_global", read_only=True)
        return fields


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
