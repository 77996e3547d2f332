"""The integrated registry's data: repositories and tags as the registry's events report them, and GC's schedule."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.db import models
from django.utils import timezone

from projects.models import Project, RestrictedQuerySet


class RepositoryQuerySet(RestrictedQuerySet):
    """Repositories, restricted to the projects a user may pull from (or take another action on)."""

    default_action = "pull"

    def with_tag_counts(self) -> RepositoryQuerySet:
        """With their project and `tag_count`, by name; the count is a subquery run for the page's rows only.

        A Count("tags") join grouped every tag of every matching repository before the page was taken. The
        subquery counts one repository's tags in the tag index (an index-only scan), for the rows the page
        shows and, on a deep page, the rows its OFFSET skips. A count column would save that, but every
        writer of tags (events, deletes, reconcile, bulk loads) would have to keep it right; this is right
        by construction.
        """
        tags = Tag.objects.filter(repository=models.OuterRef("pk")).order_by()
        count = tags.values(count=models.Func(template="COUNT(*)", output_field=models.IntegerField()))
        return (
            self.select_related("project")
            .annotate(tag_count=models.Subquery(count, output_field=models.IntegerField()))
            .order_by("name")
        )


class Repository(models.Model):
    """A repository of the integrated registry, named by its full path ("project/app")."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(max_length=255, unique=True)
    pull_count = models.PositiveBigIntegerField(default=0)
    last_pulled = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"
        indexes = [
            models.Index(fields=["project", "name"], name="repository_project_name"),
            models.Index(fields=["-updated"], name="repository_updated"),
            models.Index(fields=["-pull_count"], name="repository_pull_count"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def short_name(self) -> str:
        """The name inside its project ("app" for "project/app")."""
        return self.name.split("/", 1)[1] if "/" in self.name else self.name


class TagQuerySet(models.QuerySet):
    """Tags, with what other apps know of their images when a list asks for it."""

    def with_image_details(self) -> TagQuerySet:
        """Annotated by every TAG_ANNOTATIONS function: in the same query, so a list costs nothing per tag."""
        tags = self
        for annotate in TAG_ANNOTATIONS:
            tags = annotate(tags)
        return tags


# What other apps know of a tag's image, added to tag lists as annotations of the one query that reads them:
# the scanning app (ScanningConfig.ready) adds its latest scan of the digest as `scan_state`, `scan_summary`,
# `scan_fixable` and `scan_scanned` (all None when the image was never scanned), which the tag API shows.
TAG_ANNOTATIONS: list[Callable[[TagQuerySet], TagQuerySet]] = []


class Tag(models.Model):
    """A tag of a repository and the manifest it points at."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    digest = models.CharField(max_length=150, db_index=True)
    media_type = models.CharField(max_length=255, blank=True)
    # Bytes of the image: the config and layers of a manifest (summed over an index's manifests).
    size = models.PositiveBigIntegerField(default=0)
    pushed_by = models.CharField(max_length=150, blank=True)
    pushed_at = models.DateTimeField(default=timezone.now)
    # When the portal last wrote the row (reconcile leaves rows written after it started alone).
    updated = models.DateTimeField(default=timezone.now)

    objects = TagQuerySet.as_manager()

    class Meta:
        ordering = ["repository__name", "name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="unique_tag_per_repository")]
        # The tag list's order (newest first, then by name), so a page of a repository's tags is read off the index.
        # And the newest pushes of all (Home's Recent pushes) off another, however many tags there are.
        indexes = [
            models.Index(fields=["repository", "-pushed_at", "name"], name="tag_repository_pushed_name"),
            models.Index(fields=["-pushed_at", "-id"], name="tag_pushed"),
        ]

    def __str__(self) -> str:
        return f"{self.repository.name}:{self.name}"


class DailyPulls(models.Model):
    """How many pulls a project's repositories had on one day (UTC): the Summary's pulls-per-day chart.

    Repository.pull_count only grows, so it cannot say when; each applied pull event adds one here too.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="daily_pulls")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["project", "day"]
        constraints = [models.UniqueConstraint(fields=["project", "day"], name="unique_daily_pulls_per_project")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day}: {self.count}"


class RegistryEvent(models.Model):
    """A registry notification: recorded by the web process, applied once by the worker (`applied` set).

    The unique event id ignores repeats; recorded deletes order late-arriving pushes.
    """

    event_id = models.CharField(max_length=128, unique=True)
    action = models.CharField(max_length=16)
    repository = models.CharField(max_length=255, blank=True)
    digest = models.CharField(max_length=150, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    media_type = models.CharField(max_length=255, blank=True)
    length = models.BigIntegerField(default=0)
    actor = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    timestamp = models.DateTimeField()
    received = models.DateTimeField(default=timezone.now, db_index=True)
    applied = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["repository", "digest", "action"], name="registry_event_lookup"),
            models.Index(fields=["timestamp"], condition=models.Q(applied__isnull=True), name="registry_event_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.repository} {self.tag or self.digest}"


class GcSchedule(models.Model):
    """The one row saying when registry garbage collection runs on its own: never, or daily at a time."""

    class Frequency(models.TextChoices):
        OFF = "off", "None"
        DAILY = "daily", "Daily"

    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.OFF)
    time = models.TimeField(default=datetime.time(1, 0))
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "garbage collection schedule"

    def __str__(self) -> str:
        return "off" if self.frequency == self.Frequency.OFF else f"daily at {self.time:%H:%M}"

    @classmethod
    def load(cls) -> GcSchedule:
        """Return the schedule row, creating it (off) on first use."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class ExternalRegistryQuerySet(models.QuerySet):
    """External registries, with the ones a project may search."""

    def available_to(self, project: Project) -> ExternalRegistryQuerySet:
        """The enabled global registries and the project's own enabled registries."""
        return self.filter(models.Q(project__isnull=True) | models.Q(project=project), enabled=True)


class ExternalRegistry(models.Model):
    """A registry outside Wharf that projects search and pull from: global (no project) or one project's."""

    class ApiVersion(models.TextChoices):
        V2 = "v2", "V2"
        V1 = "v1", "V1"

    class AuthType(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "Basic"
        BEARER = "bearer", "Bearer token"

    name = models.CharField(max_length=100)
    # Normalized: scheme://host[:port][/namespace], without a default port or a trailing slash.
    address = models.CharField(max_length=255)
    # The path part of the address ("vmware"): only repositories under it are exposed.
    namespace = models.CharField(max_length=200, blank=True)
    # Plain HTTP is refused unless the administrator allowed it here.
    insecure = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="external_registries"
    )
    credential = models.ForeignKey(
        "portal.Credential", on_delete=models.PROTECT, null=True, blank=True, related_name="registries"
    )
    api_version = models.CharField(max_length=4, choices=ApiVersion.choices, default=ApiVersion.V2)
    auth_type = models.CharField(max_length=8, choices=AuthType.choices, default=AuthType.NONE)
    last_verified = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    objects = ExternalRegistryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "external registries"
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(project__isnull=True), name="unique_global_registry_name"
            ),
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(project__isnull=False),
                name="unique_project_registry_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_global(self) -> bool:
        """True for a registry every project sees."""
        return self.project_id is None

    @property
    def base_url(self) -> str:
        """scheme://host[:port], the address without its namespace."""
        if not self.namespace:
            return self.address
        return self.address[: -len(self.namespace) - 1]


class ObservedManifest(models.Model):
    """A manifest push, pull or delete the /v2/ proxy served: who did it, from where, when.

    Registry notifications say who pushed or pulled, but anyone holding the notification secret could
    say so too. So an event's actor and address are taken from what the portal itself saw, matched by
    action, repository and digest; a pull or delete the portal never served is not believed.
    """

    action = models.CharField(max_length=16)
    repository = models.CharField(max_length=255)
    digest = models.CharField(max_length=150)
    username = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["repository", "digest", "action"], name="observed_manifest_lookup")]

    def __str__(self) -> str:
        return f"{self.action} {self.repository}@{self.digest} by {self.username or 'anonymous'}"


class TrustCollection(models.Model):
    """A notary GUN holding a repository's signatures, as the token service saw a signer ask for it.

    Docker names trust data after the registry host it pushed to (`wharf.example:8282/proj/app`), which may be any
    of the portal's names; the GUN a signer asked to push to is where the portal reads the signatures back. The root
    keys first verified for it are pinned: a later root counts only when those keys signed it too; and the versions
    of its role files verified last are kept, so that notary serving older ones (a rollback) is refused.
    """

    gun = models.CharField(max_length=255, unique=True)
    repository = models.CharField(max_length=255, db_index=True)
    pinned_root = models.JSONField(null=True, blank=True)
    # The version of each role file last verified: older ones are refused as a rollback (tuf.verify's `seen`).
    seen_versions = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.gun
