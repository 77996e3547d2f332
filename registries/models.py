"""The integrated registry's data: repositories and tags as the registry's events report them, and GC's schedule."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db import models
from django.utils import timezone

from projects.models import Project

if TYPE_CHECKING:
    from portal.models import User


class RepositoryQuerySet(models.QuerySet):
    """Repositories, with `restrict` limiting them to the projects a user may act on."""

    def restrict(self, user: User | None, action: str = "pull") -> RepositoryQuerySet:
        """Only the repositories of projects on which `user` may take `action` (default: pull)."""
        return self.filter(project__in=Project.objects.restrict(user, action))


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

    class Meta:
        ordering = ["repository__name", "name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="unique_tag_per_repository")]
        indexes = [models.Index(fields=["repository", "-pushed_at"], name="tag_repository_pushed_at")]

    def __str__(self) -> str:
        return f"{self.repository.name}:{self.name}"


class RegistryEvent(models.Model):
    """A registry notification already applied: the key for ignoring repeats, and deletes seen (for ordering)."""

    event_id = models.CharField(max_length=128, unique=True)
    action = models.CharField(max_length=16)
    repository = models.CharField(max_length=255, blank=True)
    digest = models.CharField(max_length=150, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    timestamp = models.DateTimeField()
    received = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["repository", "digest", "action"], name="registry_event_lookup")]

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
