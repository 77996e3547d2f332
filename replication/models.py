"""Data of replication: endpoints (remote registries), rules (what goes where, when), executions and their tasks.

An execution is one run of a rule: its row points at the parent job (portal.core.Job) that plans the run and
drives it; each task is one repository copied (or a tag deleted) by a child job of that parent. The jobs hold
state, attempts, lease, progress and log; the rows here add what replication counts and where it belongs.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from portal.core.models import Job
from projects.models import Project


class EndpointKind(models.TextChoices):
    """What answers at an endpoint: another Wharf (projects are created through its API) or any V2 registry."""

    WHARF = "wharf", "Wharf"
    REGISTRY = "registry", "Docker registry (V2)"


class Endpoint(models.Model):
    """A remote registry that rules replicate to, with the login replication uses there."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=EndpointKind.choices, default=EndpointKind.WHARF)
    # Normalized scheme://host[:port], without a path or a trailing slash.
    url = models.CharField(max_length=255)
    credential = models.ForeignKey(
        "portal.Credential",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replication_endpoints",
    )
    # On: only certificates the portal already trusts. Off: the remote's certificate is shown, and pinned once
    # the administrator accepts it (never skipped).
    verify_remote_cert = models.BooleanField(default=True)
    last_checked = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Trigger(models.TextChoices):
    """When a rule runs."""

    MANUAL = "manual", "Manual"
    IMMEDIATE = "immediate", "Immediate"
    SCHEDULED = "scheduled", "Scheduled"


class Rule(models.Model):
    """One-way replication of a project's repositories (those its filters match) to a project on an endpoint."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="replication_rules")
    # Globs on the repository's name inside the project ("web/*") and on the tag ("1.*"); empty matches all.
    repository_filter = models.CharField(max_length=255, blank=True)
    tag_filter = models.CharField(max_length=128, blank=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="rules")
    # The project (namespace) on the endpoint; empty: the source project's name.
    destination_project = models.CharField(max_length=255, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    # Immediate rules: delete on the endpoint what is deleted here.
    replicate_deletion = models.BooleanField(default=False)
    # Scheduled rules: a five-field cron expression on the portal's clock.
    cron = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def destination(self) -> str:
        """The project (namespace) the rule writes to on its endpoint."""
        return self.destination_project or self.project.name


class Execution(models.Model):
    """One run of a rule, driven by its parent job."""

    class Cause(models.TextChoices):
        MANUAL = "manual", "Manual"
        ENABLED = "enabled", "Rule enabled"
        IMMEDIATE = "immediate", "Push or delete"
        SCHEDULED = "scheduled", "Schedule"
        RETRY = "retry", "Retry of failed tasks"

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="executions")
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="replication_execution")
    cause = models.CharField(max_length=10, choices=Cause.choices)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["rule", "-created", "-id"], name="execution_rule")]

    def __str__(self) -> str:
        return f"{self.rule.name} #{self.pk}"


class Task(models.Model):
    """One repository of an execution, copied (or its tags deleted) on the endpoint by a child job."""

    class Operation(models.TextChoices):
        COPY = "copy", "Copy"
        DELETE = "delete", "Delete"

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="tasks")
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="replication_task")
    operation = models.CharField(max_length=6, choices=Operation.choices, default=Operation.COPY)
    # The source repository's full name ("web/app") and where it goes on the endpoint ("dr-web/app").
    repository = models.CharField(max_length=255)
    destination = models.CharField(max_length=255)
    # The tags to copy or delete; empty for a copy: every tag the rule's tag filter matches.
    tags = models.JSONField(default=list, blank=True)
    tags_copied = models.PositiveIntegerField(default=0)
    tags_skipped = models.PositiveIntegerField(default=0)
    tags_deleted = models.PositiveIntegerField(default=0)
    tags_failed = models.PositiveIntegerField(default=0)
    blobs_copied = models.PositiveIntegerField(default=0)
    blobs_mounted = models.PositiveIntegerField(default=0)
    blobs_skipped = models.PositiveIntegerField(default=0)
    blobs_failed = models.PositiveIntegerField(default=0)
    bytes_copied = models.PositiveBigIntegerField(default=0)
    bytes_skipped = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["repository", "id"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "repository", "operation"], name="one_task_per_repository")
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.repository}"

    COUNTERS = (
        "tags_copied",
        "tags_skipped",
        "tags_deleted",
        "tags_failed",
        "blobs_copied",
        "blobs_mounted",
        "blobs_skipped",
        "blobs_failed",
        "bytes_copied",
        "bytes_skipped",
    )
