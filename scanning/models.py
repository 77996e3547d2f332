"""Data of scanning: the vulnerability database (advisories, the packages they affect) and the feeds that fill it."""

from __future__ import annotations

from django.db import models


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
