"""API serializers of scanning: image scans and their findings, the scan of all images, the vulnerability
database's feeds, and the CVE allowlists."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.core.api.serializers import SECRET, ClockTimeField, JobSerializer, JsonBooleanField, StrictCharField
from portal.core.models import ScanSchedule
from scanning.models import AllowlistEntry, FeedSource, ImageFinding, ImageScan, ScannerKind, ScannerRegistration
from scanning.services.scans import CVE_ID


class ScanSerializer(serializers.ModelSerializer):
    """An image's latest scan: its state and job, what was found in the image, and the findings' counts."""

    summary = serializers.DictField(child=serializers.IntegerField(), read_only=True, help_text="findings by severity")
    scanner = serializers.CharField(
        source="scanner_name", read_only=True, help_text="The scanner registration that made (or failed) the scan"
    )
    scanner_kind = serializers.CharField(read_only=True, help_text="builtin, clair or harbor_adapter")

    class Meta:
        model = ImageScan
        fields = [
            "digest", "repository", "state", "job", "distribution", "package_count", "summary", "fixable",
            "requested", "scanned", "matched", "error", "scanner", "scanner_kind",
        ]  # fmt: skip
        read_only_fields = fields


class AllowedSerializer(serializers.Serializer):
    """Where a finding's CVE is allowlisted, and until when (inclusive; null: for good)."""

    where = serializers.ChoiceField(choices=["system", "project"])
    until = serializers.DateField(allow_null=True)


class FindingSerializer(serializers.ModelSerializer):
    """One vulnerability of one package of the image; `allowlisted` says which allowlist excuses it, if any."""

    links = serializers.ListField(child=serializers.CharField(), read_only=True)
    allowlisted = serializers.SerializerMethodField()

    class Meta:
        model = ImageFinding
        fields = [
            "vulnerability", "package", "installed_version", "fixed_version", "severity", "status", "namespace",
            "description", "links", "cvss_score", "allowlisted",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(AllowedSerializer(allow_null=True))
    def get_allowlisted(self, finding: ImageFinding) -> dict | None:
        """The entry excusing the CVE in the project (the view passes them as `allowlist`), or null."""
        entry = self.context["allowlist"].get(finding.vulnerability)
        if entry is None:
            return None
        return {"where": "project" if entry.project_id else "system", "until": entry.expires}


class FindingPageSerializer(serializers.Serializer):
    """A page of findings, worst first."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = FindingSerializer(many=True)


class ScanReportSerializer(ScanSerializer):
    """The report of a tag's image: the scan and a page of its findings (filtered as asked)."""

    findings = FindingPageSerializer(read_only=True)

    class Meta(ScanSerializer.Meta):
        fields = [*ScanSerializer.Meta.fields, "findings"]
        read_only_fields = fields


class ScanAllSerializer(serializers.Serializer):
    """The scan of all images: its daily schedule and next run, the last run, and when Scan Now may run again."""

    schedule = serializers.ChoiceField(choices=ScanSchedule.choices, help_text="the setting scan_schedule")
    time = ClockTimeField(help_text="when the daily scan starts, on the portal's clock")
    last = JobSerializer(allow_null=True, help_text="the latest scan of all images, scheduled or manual")
    next_allowed = serializers.DateTimeField(allow_null=True, help_text="when Scan Now may run again; null: now")
    next_scheduled = serializers.DateTimeField(
        allow_null=True, help_text="when the daily scan next starts; null: the schedule is off"
    )


class FeedSourceSerializer(serializers.ModelSerializer):
    """One feed of the vulnerability database: where from, when it last ran, succeeded and changed, and counts."""

    loaded = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text="advisories and packages loaded"
    )

    class Meta:
        model = FeedSource
        fields = ["name", "source", "url", "last_run", "last_success", "last_changed", "loaded", "error"]
        read_only_fields = fields


class ImportSerializer(serializers.Serializer):
    """An uploaded bundle (`manage.py vulndb export`) or one feed file named by its source (debian.json, ...)."""

    file = serializers.FileField()


class ImportedFeedSerializer(serializers.Serializer):
    """One feed an import loaded, with its counts."""

    name = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())


class UpdateSerializer(serializers.Serializer):
    """Which sources to update (debian, ubuntu, alpine, ...); none named: every source."""

    sources = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=20)


class AllowlistEntrySerializer(serializers.ModelSerializer):
    """A CVE on an allowlist, until `expires` (inclusive; null: for good)."""

    cve = serializers.RegexField(CVE_ID.pattern, max_length=100, help_text="CVE-2024-1234, GHSA-…, ALSA-…")
    expires = serializers.DateField(required=False, allow_null=True)

    class Meta:
        model = AllowlistEntry
        fields = ["cve", "expires", "created", "created_by"]
        read_only_fields = ["created", "created_by"]


# --- scanner registrations ------------------------------------------------------------------------------

SCANNER_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class ScannerSerializer(serializers.ModelSerializer):
    """A scanner registration as shown: never its secrets, only whether they are set."""

    has_psk = serializers.SerializerMethodField()
    has_authorization = serializers.SerializerMethodField()

    class Meta:
        model = ScannerRegistration
        fields = [
            "name", "kind", "description", "indexer_url", "matcher_url", "adapter_url", "psk_issuer", "has_psk",
            "has_authorization", "is_default", "enabled", "last_tested", "last_test_ok", "last_test_result",
            "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields

    def get_has_psk(self, registration: ScannerRegistration) -> bool:
        """Whether a Clair PSK is stored."""
        return bool(registration.psk)

    def get_has_authorization(self, registration: ScannerRegistration) -> bool:
        """Whether an adapter Authorization value is stored."""
        return bool(registration.authorization)


class ScannerUpdateSerializer(serializers.Serializer):
    """What an edit changes (any of it); secrets are write-only and an empty one keeps what is stored."""

    description = StrictCharField(max_length=255, required=False, allow_blank=True)
    indexer_url = StrictCharField(max_length=1000, required=False, allow_blank=True, help_text="Clair's indexer")
    matcher_url = StrictCharField(
        max_length=1000, required=False, allow_blank=True, help_text="Clair's matcher (empty: the indexer's URL)"
    )
    adapter_url = StrictCharField(
        max_length=1000, required=False, allow_blank=True, help_text="The adapter's URL (its API is under /api/v1)"
    )
    psk = StrictCharField(**SECRET, max_length=1000, help_text="Clair's auth.psk.key (base64); write-only")
    psk_issuer = StrictCharField(max_length=100, required=False, allow_blank=True, help_text="Default: clairctl")
    authorization = StrictCharField(
        **SECRET, max_length=4096, help_text="The Authorization header value the adapter wants; write-only"
    )
    clear_psk = JsonBooleanField(required=False, help_text="Remove the stored PSK")
    clear_authorization = JsonBooleanField(required=False, help_text="Remove the stored Authorization")
    enabled = JsonBooleanField(required=False)


class ScannerCreateSerializer(ScannerUpdateSerializer):
    """A new Clair v4 or Harbor adapter registration (the built-in scanner is registered already)."""

    name = serializers.RegexField(SCANNER_NAME, max_length=64)
    kind = serializers.ChoiceField(choices=[ScannerKind.CLAIR, ScannerKind.HARBOR_ADAPTER])
    is_default = JsonBooleanField(required=False, help_text="Make it the default scanner at once")
    clear_psk = None
    clear_authorization = None


class ScannerTestSerializer(serializers.Serializer):
    """What Test Connection found: whether the scanner answered, in words, and an adapter's metadata."""

    ok = serializers.BooleanField()
    message = serializers.CharField()
    metadata = serializers.DictField(allow_null=True, help_text="GET /metadata of an adapter; null otherwise")
    scanner = ScannerSerializer()


class ProjectScannerSerializer(serializers.Serializer):
    """The scanner a project picked (null: the default) and the one that scans its images now."""

    scanner = serializers.SlugRelatedField(
        slug_field="name", queryset=ScannerRegistration.objects.all(), allow_null=True
    )
    effective = serializers.CharField(read_only=True, help_text="The registration that scans the project's images")
