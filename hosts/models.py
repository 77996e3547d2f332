"""Container hosts (Docker hosts and VCHs) attached to projects, and the containers found on them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from hosts.whitelist import ReportedWhitelist, Verdict, from_info
from projects.models import Project, RestrictedQuerySet


class HostKind(models.TextChoices):
    DOCKER = "docker", "Docker"
    VCH = "vch", "VCH"


class HostState(models.TextChoices):
    ON = "on", "ON"
    UNREACHABLE = "unreachable", "UNREACHABLE"
    DISABLED = "disabled", "DISABLED"


class WhitelistMode(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


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
    # A VCH's registry configuration from /info's SystemStatus (hosts/whitelist.py); mode "" when the host
    # reports none (Docker hosts, or a VCH not collected yet).
    whitelist_mode = models.CharField(max_length=8, choices=WhitelistMode.choices, blank=True)
    # True when the VCH took its whitelist from a management portal rather than from vic-machine.
    whitelist_remote = models.BooleanField(default=False)
    whitelisted_registries = models.JSONField(default=list, blank=True)
    insecure_registries = models.JSONField(default=list, blank=True)
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

    @property
    def reported_whitelist(self) -> ReportedWhitelist | None:
        """The registry whitelist the host last reported, or None when it reports none."""
        if not self.whitelist_mode:
            return None
        return ReportedWhitelist(
            enabled=self.whitelist_mode == WhitelistMode.ENABLED,
            registries=list(self.whitelisted_registries),
            insecure=list(self.insecure_registries),
            remote=self.whitelist_remote,
        )


# The whitelist columns of a host that reports no whitelist.
NO_WHITELIST = {
    "whitelist_mode": "",
    "whitelist_remote": False,
    "whitelisted_registries": [],
    "insecure_registries": [],
}


def whitelist_columns(info: dict[str, Any]) -> dict[str, Any]:
    """The host's whitelist columns for an /info answer (all empty when it reports no whitelist)."""
    reported = from_info(info)
    if reported is None:
        return {key: list(value) if isinstance(value, list) else value for key, value in NO_WHITELIST.items()}
    return {
        "whitelist_mode": WhitelistMode.ENABLED if reported.enabled else WhitelistMode.DISABLED,
        "whitelist_remote": reported.remote,
        "whitelisted_registries": reported.registries[:100],
        "insecure_registries": reported.insecure[:100],
    }


class WhitelistState(models.TextChoices):
    UNKNOWN = Verdict.UNKNOWN, "Whitelist not reported yet"
    CHANGE_NEEDED = Verdict.CHANGE_NEEDED, "Change needed"
    COMPLIANT = Verdict.COMPLIANT, "Already compliant"
    REFUSED = Verdict.REFUSED, "Refused: would be more permissive"
    LIFTED = Verdict.LIFTED, "Restriction can be lifted"


class WhitelistChangeQuerySet(RestrictedQuerySet):
    """Whitelist changes, restricted to the projects of their hosts a user may see."""

    project_path = "host__project"


class WhitelistChange(models.Model):
    """What content trust in its project asks of a VCH's registry whitelist: the change to make, or the refusal.

    The portal cannot reach a VCH's VIC admin API, so it records the change for the administrator to make.
    One row per VCH: a VCH belongs to one project of the portal (its endpoint is unique), and the row is
    judged again whenever content trust is switched, the VCH is added, or a collection learns its whitelist.
    """

    host = models.OneToOneField(ContainerHost, on_delete=models.CASCADE, related_name="whitelist_change")
    state = models.CharField(max_length=16, choices=WhitelistState.choices)
    # The whitelist the VCH reported when judged ([] with mode disabled: every registry allowed).
    current_mode = models.CharField(max_length=8, choices=WhitelistMode.choices, blank=True)
    current = models.JSONField(default=list, blank=True)
    # What content trust asks: only the portal's integrated registry ([] once content trust is off).
    required = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    updated = models.DateTimeField(default=timezone.now)

    objects = WhitelistChangeQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.host.name}: {self.get_state_display()}"

    @property
    def command(self) -> str:
        """The vic-machine option that sets the required whitelist ("" when nothing is to be done).

        VIC 1.4 sets a whitelist only when a VCH is deployed: `vic-machine configure` has no whitelist option
        (vmware/vic cmd/vic-machine/common/registries.go registers only --registry-ca for it).
        """
        if self.state != WhitelistState.CHANGE_NEEDED:
            return ""
        options = " ".join(f"--whitelist-registry {registry}" for registry in self.required)
        return f"vic-machine-linux create <the VCH's deployment options> {options}"


class HostSample(models.Model):
    """One collection's reading of a host's use: CPU and memory of its running containers, kept for a while.

    Written by each collection cycle (hosts.collection) and pruned on write past HOST_SAMPLE_RETENTION_MINUTES;
    the host's page charts the last hour of them. CPU is a share of the whole host, from the containers'
    cumulative CPU time since the previous sample (None on the first one, and for hosts that give no stats).
    """

    host = models.ForeignKey(ContainerHost, on_delete=models.CASCADE, related_name="samples")
    time = models.DateTimeField(default=timezone.now)
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_used_bytes = models.PositiveBigIntegerField(default=0)
    memory_total_bytes = models.PositiveBigIntegerField(default=0)
    containers_running = models.PositiveIntegerField(default=0)
    # Cumulative nanoseconds (containers' CPU time, the host's CPU time) the next sample's CPU share is taken from.
    container_cpu_ns = models.PositiveBigIntegerField(default=0)
    system_cpu_ns = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["host", "time"]
        indexes = [models.Index(fields=["host", "time"], name="host_sample_host_time")]

    def __str__(self) -> str:
        return f"{self.host_id} {self.time:%H:%M:%S}"


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
