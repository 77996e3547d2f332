"""API serializers of repositories, tags, garbage collection and external registries."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.core.api.serializers import ClockTimeField
from portal.core.models import Credential
from projects.models import Project
from registries.content_trust import Signature
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


class TagScanSerializer(serializers.Serializer):
    """The latest vulnerability scan of a tag's image, as the tags table shows it: its state and counts."""

    state = serializers.CharField(source="scan_state", help_text="pending, running, succeeded or failed")
    summary = serializers.DictField(
        source="scan_summary", child=serializers.IntegerField(), help_text="findings by severity"
    )
    fixable = serializers.IntegerField(source="scan_fixable", help_text="findings a newer package version fixes")
    scanned = serializers.DateTimeField(source="scan_scanned", allow_null=True)


class SignatureSerializer(serializers.Serializer):
    """Whether a tag is signed (a verified notary target names its current digest) and, when not, why."""

    signed = serializers.BooleanField()
    reason = serializers.CharField(
        help_text="why the tag is not signed (no trust data, signed for another digest, expired, notary unreachable); "
        "empty when signed"
    )
    role = serializers.CharField(
        source="target.role", default=None, allow_null=True, help_text="the signing role: targets/releases or targets"
    )
    digest = serializers.CharField(
        source="target.digest", default=None, allow_null=True, help_text="the manifest digest the signature names"
    )


class TagSerializer(serializers.ModelSerializer):
    """A tag with the manifest it points at, the command that pulls it, its signature and its image's latest scan.

    The signature state comes from the `signatures` of the context (content_trust.Signatures), read once per response.
    """

    created = serializers.DateTimeField(source="pushed_at", read_only=True)
    pull_command = serializers.SerializerMethodField()
    signed = serializers.SerializerMethodField()
    signature = serializers.SerializerMethodField()
    scan = serializers.SerializerMethodField()

    class Meta:
        model = Tag
        fields = [
            "name", "digest", "media_type", "size", "created", "pushed_by", "pushed_at", "pull_command",
            "signed", "signature", "scan",
        ]  # fmt: skip
        read_only_fields = fields

    def _signature(self, tag: Tag) -> Signature:
        return self.context["signatures"].of(tag.name, tag.digest)

    def get_signed(self, tag: Tag) -> bool:
        """Whether a verified signature names the tag's current digest."""
        return self._signature(tag).signed

    @extend_schema_field(SignatureSerializer)
    def get_signature(self, tag: Tag) -> dict:
        """The tag's signature state: signed, or why not."""
        return SignatureSerializer(self._signature(tag)).data

    @extend_schema_field(TagScanSerializer(allow_null=True))
    def get_scan(self, tag: Tag) -> dict | None:
        """The image's latest scan (annotated by Tag.objects.with_image_details); null when never scanned."""
        if getattr(tag, "scan_state", None) is None:
            return None
        return TagScanSerializer(tag).data

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


class SignedTargetSerializer(serializers.Serializer):
    """One verified notary target: the tag it signs, the manifest digest and length it vouches for, the role."""

    tag = serializers.CharField(source="name")
    digest = serializers.CharField()
    length = serializers.IntegerField()
    role = serializers.CharField(help_text="targets/releases (docker's delegation) or targets")


class TagSignatureSerializer(serializers.Serializer):
    """A current tag of the repository and whether it is signed (and why not)."""

    name = serializers.CharField()
    digest = serializers.CharField()
    signed = serializers.BooleanField(source="signature.signed")
    reason = serializers.CharField(source="signature.reason")


class RepositorySignaturesSerializer(serializers.Serializer):
    """A repository's content trust: the verified signed targets, each current tag's state, and the problem."""

    repository = serializers.CharField()
    content_trust = serializers.BooleanField(help_text="whether the project refuses pulls of unsigned images")
    problem = serializers.CharField(
        help_text="why no trust data could be read (none pushed, notary unreachable, data not believed); "
        "empty when it was read"
    )
    targets = SignedTargetSerializer(many=True)
    tags = TagSignatureSerializer(many=True)


class LayerSerializer(serializers.Serializer):
    """One layer of an image: digest, media type and compressed size."""

    digest = serializers.CharField()
    media_type = serializers.CharField()
    size = serializers.IntegerField()


class HistoryStepSerializer(serializers.Serializer):
    """One step of an image's build history."""

    created = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField()
    comment = serializers.CharField()
    empty_layer = serializers.BooleanField(help_text="whether the step added no layer")


class PlatformImageSerializer(serializers.Serializer):
    """One image of the tag (one per platform of an index) with what its config says."""

    digest = serializers.CharField()
    media_type = serializers.CharField()
    platform = serializers.CharField(help_text="os/architecture[/variant]")
    os = serializers.CharField()
    architecture = serializers.CharField()
    variant = serializers.CharField()
    created = serializers.DateTimeField(allow_null=True)
    author = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    size = serializers.IntegerField(help_text="bytes of the layers, compressed")
    config_digest = serializers.CharField()
    layers = LayerSerializer(many=True)
    history = HistoryStepSerializer(many=True)
    problem = serializers.CharField(help_text="why the image config could not be read; empty when it was")


class TagDetailsSerializer(serializers.Serializer):
    """A tag's manifest as the registry holds it, the images it stands for, and the commands that use it."""

    name = serializers.CharField()
    repository = serializers.CharField()
    digest = serializers.CharField()
    media_type = serializers.CharField()
    is_index = serializers.BooleanField(help_text="whether the tag is a list of platform images")
    images = PlatformImageSerializer(many=True)
    pull_command = serializers.CharField()
    provision_command = serializers.CharField(help_text="the API call that provisions a container from the tag")
