"""Data of scanning: the vulnerability database (advisories, the packages they affect) and the feeds that fill it;
the indexes of image layers, each image's latest scan with its findings, and the CVE allowlists."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from portal.core.models import Job
from projects.models import Project


class Severity(models.TextChoices):
    """The normalised severity scale every source is mapped onto (Clair's, which Harbor shows)."""

    UNKNOWN = "Unknown"
    NEGLIGIBLE = "Negligible"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    CRITICAL = "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        """The position of a severity on the scale, Unknown lowest (for sorting and thresholds)."""
        return SEVERITY_ORDER.index(value) if value in SEVERITY_ORDER else 0


SEVERITY_ORDER = [choice.value for choice in Severity]


class FixStatus(models.TextChoices):
    """What a source says about one package in one release."""

    FIXED = "fixed", "fixed"
    NOT_AFFECTED = "not_affected", "not affected"
    OPEN = "open", "no fix yet"


class FeedSource(models.Model):
    """One feed file an updater fetches (a source may have several, e.g. one per Alpine branch): where from,
    the validators of the last copy loaded (so an unchanged feed is not downloaded again), and how its runs went."""

    name = models.CharField(max_length=100, unique=True)
    source = models.CharField(max_length=40, help_text="The updater that reads this feed (debian, alpine, ...).")
    url = models.CharField(max_length=1000, blank=True, help_text="Where it was last fetched from; blank if imported.")
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    last_run = models.DateTimeField(null=True, blank=True)
    last_success = models.DateTimeField(null=True, blank=True)
    last_changed = models.DateTimeField(null=True, blank=True, help_text="When its advisories last changed.")
    # The database's content changed at last_success (loaded from the network or from a file), e.g.
    # {"vulnerabilities": 1200, "packages": 3400}; an unchanged feed (304) keeps the counts it had.
    loaded = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Vulnerability(models.Model):
    """One advisory as one feed publishes it (the same CVE from Debian and from Alpine is two rows)."""

    name = models.CharField(max_length=100, help_text="CVE-…, GHSA-…, ALSA-…")
    source = models.CharField(max_length=100, db_index=True, help_text="The FeedSource name that published it.")
    aliases = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=12, choices=Severity.choices, default=Severity.UNKNOWN)
    cvss_score = models.FloatField(null=True, blank=True)
    cvss_vector = models.CharField(max_length=200, blank=True)
    links = models.JSONField(default=list, blank=True)
    published = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    withdrawn = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="scanning_vulnerability_source_name")]
        indexes = [models.Index(fields=["name"], name="scanning_vulnerability_name")]

    def __str__(self) -> str:
        return self.name


class AffectedPackage(models.Model):
    """One package of one namespace an advisory speaks of, with one range of affected versions.

    Debian and Ubuntu name the source package; the others the package as installed. An OSV
    record with several ranges is several rows; its explicit `versions[]` list is a row of its own.
    A row is affected when: status is open with no bounds (every version), or the version is in
    `versions`, or introduced <= version (< fixed_version | <= last_affected | unbounded).
    """

    vulnerability = models.ForeignKey(Vulnerability, on_delete=models.CASCADE, related_name="affected")
    namespace = models.CharField(max_length=40, help_text="debian:12, ubuntu:22.04, alpine:3.19, rhel:9, pypi, npm")
    package = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=FixStatus.choices)
    introduced = models.CharField(max_length=255, blank=True)
    fixed_version = models.CharField(max_length=255, blank=True)
    last_affected = models.CharField(max_length=255, blank=True)
    versions = models.JSONField(default=list, blank=True)
    # The source's severity for this package in this release (Debian's urgency is per release); Unknown
    # defers to the advisory's own.
    severity = models.CharField(max_length=12, choices=Severity.choices, default=Severity.UNKNOWN)

    class Meta:
        indexes = [models.Index(fields=["namespace", "package"], name="scanning_affected_ns_package")]

    def __str__(self) -> str:
        return f"{self.vulnerability_id} {self.namespace}/{self.package}"


class IndexedLayer(models.Model):
    """What the indexer found in one layer (scanning.indexer.LayerIndex as JSON), by digest and indexer version:
    a rescan, or another image sharing the layer, reads it from here instead of downloading it."""

    digest = models.CharField(max_length=150)
    indexer_version = models.PositiveSmallIntegerField()
    result = models.JSONField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["digest", "indexer_version"], name="scanning_one_index_per_layer")
        ]

    def __str__(self) -> str:
        return f"{self.digest} (indexer {self.indexer_version})"


class ScanState(models.TextChoices):
    """Where an image's scan stands."""

    PENDING = "pending", "Queued"
    RUNNING = "running", "Scanning"
    SUCCEEDED = "succeeded", "Scanned"
    FAILED = "failed", "Failed"


class ImageScan(models.Model):
    """The latest scan of one image (a manifest digest: the same bytes are the same image in any repository)."""

    digest = models.CharField(max_length=150, unique=True)
    # Where the image was last read from (the layers are fetched from this repository).
    repository = models.CharField(max_length=255)
    state = models.CharField(max_length=10, choices=ScanState.choices, default=ScanState.PENDING)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="image_scans")
    layers = models.JSONField(default=list, blank=True)
    # The image's ImageIndex as JSON: what a new vulnerability database is matched against, without the layers.
    index = models.JSONField(default=dict, blank=True)
    distribution = models.CharField(max_length=200, blank=True)
    package_count = models.PositiveIntegerField(default=0)
    # Findings by severity ({"Critical": 2, ...}) for the tags table's bar without reading the findings.
    summary = models.JSONField(default=dict, blank=True)
    fixable = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    requested = models.DateTimeField(default=timezone.now)
    scanned = models.DateTimeField(null=True, blank=True)
    matched = models.DateTimeField(null=True, blank=True)
    # Which registration made the findings (its name is kept should it be deleted); blank for scans made before
    # registrations existed, which were the built-in scanner's.
    scanner = models.ForeignKey(
        "ScannerRegistration", on_delete=models.SET_NULL, null=True, blank=True, related_name="image_scans"
    )
    scanner_name = models.CharField(max_length=64, blank=True)
    scanner_kind = models.CharField(max_length=20, blank=True)
    # Clair's index state when Clair made the scan: handed back so an unchanged indexer skips indexing again.
    remote_state = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest} ({self.state})"


class ImageFinding(models.Model):
    """One vulnerability of one package of a scanned image."""

    scan = models.ForeignKey(ImageScan, on_delete=models.CASCADE, related_name="findings")
    vulnerability = models.CharField(max_length=100)
    package = models.CharField(max_length=255)
    installed_version = models.CharField(max_length=255)
    fixed_version = models.CharField(max_length=255, blank=True)
    severity = models.CharField(max_length=12, choices=Severity.choices)
    # Severity.rank(severity), for sorting and thresholds in SQL.
    rank = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20)
    namespace = models.CharField(max_length=40, blank=True)
    description = models.TextField(blank=True)
    links = models.JSONField(default=list, blank=True)
    cvss_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-rank", "vulnerability", "package"]
        indexes = [models.Index(fields=["scan", "-rank"], name="scanning_finding_rank")]

    def __str__(self) -> str:
        return f"{self.vulnerability} in {self.package} {self.installed_version}"


class AllowlistEntry(models.Model):
    """A CVE that does not count for the run policy: system-wide (no project) or one project's, until it expires."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="cve_allowlist")
    cve = models.CharField(max_length=100)
    # The last day it counts (inclusive), on the portal's clock; none: it does not expire.
    expires = models.DateField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["cve"]
        constraints = [
            models.UniqueConstraint(
                fields=["cve"], condition=models.Q(project__isnull=True), name="scanning_one_system_allowlist_entry"
            ),
            models.UniqueConstraint(
                fields=["project", "cve"],
                condition=models.Q(project__isnull=False),
                name="scanning_one_project_allowlist_entry",
            ),
        ]

    def __str__(self) -> str:
        return self.cve


class AdapterScan(models.Model):
    """A scan asked for through the Harbor scanner-adapter API (/scanner/api/v1/): the image is pulled from the
    registry the caller named, with the Authorization header it gave, and the report is kept for it to fetch."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    registry_url = models.CharField(max_length=1000)
    repository = models.CharField(max_length=255)
    digest = models.CharField(max_length=150)
    tag = models.CharField(max_length=128, blank=True)
    mime_type = models.CharField(max_length=100)
    # The caller's Authorization for its registry, encrypted (portal.core.secrets) and erased when the job ends:
    # it is only needed to pull, and a job's parameters are shown in the jobs panel.
    authorization = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=ScanState.choices, default=ScanState.PENDING)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="adapter_scans")
    # The HarborVulnerabilityReport (scanning.harbor_adapter.VulnerabilityReport.as_dict()) once it succeeded.
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    requested = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested", "-id"]
        indexes = [models.Index(fields=["finished"], name="scanning_adapterscan_finished")]

    def __str__(self) -> str:
        return f"{self.registry_url}/{self.repository}@{self.digest} ({self.state})"


class ScannerKind(models.TextChoices):
    """What answers a registration's scans."""

    BUILTIN = "builtin", "Built-in scanner"
    CLAIR = "clair", "Clair v4"
    HARBOR_ADAPTER = "harbor_adapter", "Harbor scanner adapter"


BUILTIN_SCANNER = "wharf"


class ScannerRegistration(models.Model):
    """A scanner images may be scanned with (Configuration > Vulnerability Scanning > Scanners): the built-in one,
    a Clair v4 deployment, or a Harbor pluggable scanner adapter (Trivy's, another Wharf's /scanner/api/v1/).

    Exactly one is the default (the built-in until another is made default); a project may pick another
    (ProjectScanner). The secrets (Clair's PSK, the adapter's Authorization header value) are encrypted with
    portal.core.secrets and never shown again once set."""

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=ScannerKind.choices)
    description = models.CharField(max_length=255, blank=True)
    # Clair: the indexer's and the matcher's base URLs (the same for a combined deployment).
    indexer_url = models.CharField(max_length=1000, blank=True)
    matcher_url = models.CharField(max_length=1000, blank=True)
    # Harbor adapter: the URL Harbor registers (the API is under <url>/api/v1).
    adapter_url = models.CharField(max_length=1000, blank=True)
    # Clair's auth.psk.key (base64) and the issuer the tokens name, encrypted; blank: Clair runs without auth.
    psk = models.TextField(blank=True)
    psk_issuer = models.CharField(max_length=100, blank=True)
    # The adapter's Authorization header value ("Bearer …", "Basic …"), encrypted; blank: none sent.
    authorization = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    last_tested = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_result = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="scanning_one_default_scanner"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def builtin(self) -> bool:
        """Whether this is the built-in scanner (never deleted, nothing to configure)."""
        return self.kind == ScannerKind.BUILTIN

    @property
    def endpoint(self) -> str:
        """Where it is reached, in words (for tables)."""
        if self.kind == ScannerKind.CLAIR:
            same = self.matcher_url in ("", self.indexer_url)
            return self.indexer_url if same else f"{self.indexer_url} (matcher {self.matcher_url})"
        if self.kind == ScannerKind.HARBOR_ADAPTER:
            return self.adapter_url
        return "built in"


class ProjectScanner(models.Model):
    """A project's choice of a scanner other than the default (no row: the default scans its images). Kept in
    scanning: projects does not know about scanners."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="scanner_choice")
    registration = models.ForeignKey(ScannerRegistration, on_delete=models.CASCADE, related_name="projects")

    def __str__(self) -> str:
        return f"{self.project_id} -> {self.registration_id}"
