"""Container hosts (Docker hosts and VCHs) attached to projects, and the containers found on them."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from projects.models import Project, RestrictedQuerySet


class HostKind(models.TextChoices):
    DOCKER = "docker", "Docker"
    VCH = "vch", "VCH"


class HostState(models.TextChoices):
    ON = "on", "ON"
    UNREACHABLE = "unreachable", "UNREACHABLE"
    DISABLED = "disabled", "DISABLED"


class ContainerHostQuerySet(RestrictedQuerySet):
    """Hosts, restricted to the projects a user may see (or take another action on)."""


class ContainerHost(models.Model):
    """A Docker host or VCH a project provisions containers on, with what the last collection learned."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="hosts")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=HostKind.choices, default=HostKind.DOCKER)
    # Normalized scheme://host:port; one endpoint belongs to one project of the portal.
    url = models.CharField(max_length=255, unique=True)
    credential = models.ForeignKey(
        "portal.Credential", on_delete=models.PROTECT, null=True, blank=True, related_name="hosts"
    )
    state = models.CharField(max_length=12, choices=HostState.choices, default=HostState.ON)
    last_error = models.TextField(blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_collected = models.DateTimeField(null=True, blank=True)
    # The API version both sides speak (the lower of the host's and ours), used as the path prefix.
    api_version = models.CharField(max_length=10, blank=True)
    # Facts from /version and /info.
    engine_version = models.CharField(max_length=100, blank=True)
    operating_system = models.CharField(max_length=200, blank=True)
    cpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.PositiveBigIntegerField(default=0)
    containers_running = models.PositiveIntegerField(default=0)
    containers_stopped = models.PositiveIntegerField(default=0)
    images = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    objects = ContainerHostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_host_name_per_project")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_tls(self) -> bool:
        """True when the host is reached over HTTPS."""
        return self.url.startswith("https://")

    @property
    def tls_mode(self) -> str:
        """The seed's security flavour: full TLS, server-side TLS or no TLS."""
        if not self.is_tls:
            return "no TLS"
        return "full TLS" if self.credential_id else "server-side TLS"


class ContainerState(models.TextChoices):
    CREATED = "created", "Created"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    RESTARTING = "restarting", "Restarting"
    REMOVING = "removing", "Removing"
    EXITED = "exited", "Exited"
    DEAD = "dead", "Dead"
    # Gone from the host (removed there, or by us); kept until the host is removed from the project.
    REMOVED = "removed", "Removed"


class ContainerQuerySet(RestrictedQuerySet):
    """Containers, restricted to the projects of their hosts a user may see (or take another action on)."""

    project_path = "host__project"


class Container(models.Model):
    """A container on a project's host: provisioned through the portal or discovered by collection."""

    host = models.ForeignKey(ContainerHost, on_delete=models.CASCADE, related_name="containers")
    # Docker's 64-hex id; empty while a provisioning job has not created it yet.
    container_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=500)
    command = models.CharField(max_length=1000, blank=True)
    state = models.CharField(max_length=12, choices=ContainerState.choices, default=ContainerState.CREATED)
    status = models.CharField(max_length=200, blank=True)
    # [{"ip": "127.0.0.1", "private": 80, "public": 8080, "protocol": "tcp"}]
    ports = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # True for containers the portal provisioned; False for those found on the host.
    provisioned = models.BooleanField(default=False)
    provisioned_by = models.CharField(max_length=150, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    removed = models.DateTimeField(null=True, blank=True)

    objects = ContainerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["host", "container_id"],
                condition=~models.Q(container_id=""),
                name="unique_container_per_host",
            )
        ]
        indexes = [models.Index(fields=["host", "state"], name="container_host_state")]

    def __str__(self) -> str:
        return self.name

    @property
    def short_id(self) -> str:
        """The 12-character id the docker CLI shows."""
        return self.container_id[:12]
