"""The administration core's data: users and groups, API tokens, system settings, audit events, jobs."""

from __future__ import annotations

import datetime
import time
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

# How long a process goes on using the token lifetime it read (see SystemSettings.token_lifetime_seconds).
TOKEN_LIFETIME_MEMORY_SECONDS = 5


class Source(models.TextChoices):
    """Where a user or group comes from."""

    LOCAL = "local", "Local"
    LDAP = "ldap", "Directory"


class User(AbstractUser):
    """A person who logs in: a local account or a directory (LDAP) account."""

    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LOCAL)
    dn = models.CharField("directory DN", max_length=512, blank=True)
    is_portal_admin = models.BooleanField("Management Portal administrator", default=False)
    groups_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["username"]

    @property
    def full_name(self) -> str:
        """The display name, or the user name when no name is known."""
        return self.get_full_name() or self.username


class Group(models.Model):
    """A group of users (local, or mirrored from the directory) that carries roles like a user does."""

    name = models.CharField(max_length=255, unique=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LOCAL)
    dn = models.CharField("directory DN", max_length=512, blank=True)
    is_portal_admin = models.BooleanField("Management Portal administrator", default=False)
    # Effective membership: for directory groups, nested groups are already resolved.
    members = models.ManyToManyField(User, related_name="wharf_groups", blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A named bearer token a user creates for scripts; only its hash is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_token_name_per_user")]

    def __str__(self) -> str:
        return f"{self.user.username}/{self.name}"

    @property
    def is_expired(self) -> bool:
        """True once the optional expiry has passed."""
        return self.expires is not None and self.expires <= timezone.now()


class ScanSchedule(models.TextChoices):
    """When the scheduled vulnerability scan of all images runs."""

    DAILY = "daily", "Daily"
    OFF = "off", "None"


class SystemSettings(models.Model):
    """The one row of system-wide settings (Administration > Configuration)."""

    token_expiration_minutes = models.PositiveIntegerField(default=30)
    scan_schedule = models.CharField(max_length=8, choices=ScanSchedule.choices, default=ScanSchedule.DAILY)
    scan_time = models.TimeField(default=datetime.time(3, 0))
    audit_retention_days = models.PositiveIntegerField(default=180)
    updated = models.DateTimeField(auto_now=True)

    # (valid until, in time.monotonic(); seconds) of token_lifetime_seconds(), per process.
    _token_lifetime: ClassVar[tuple[float, int] | None] = None

    class Meta:
        verbose_name_plural = "system settings"

    def __str__(self) -> str:
        return "system settings"

    @classmethod
    def token_lifetime_seconds(cls) -> int:
        """How long registry tokens live; each process remembers it a few seconds (asked on every token request)."""
        remembered = cls._token_lifetime
        if remembered is not None and time.monotonic() < remembered[0]:
            return remembered[1]
        minutes = cls.objects.filter(pk=1).values_list("token_expiration_minutes", flat=True)
        lifetime = (next(iter(minutes), None) or cls._meta.get_field("token_expiration_minutes").default) * 60
        cls._token_lifetime = (time.monotonic() + TOKEN_LIFETIME_MEMORY_SECONDS, lifetime)
        return lifetime

    @classmethod
    def forget_token_lifetime(cls) -> None:
        """Make the next token_lifetime_seconds() read the database (on a change, and between tests)."""
        cls._token_lifetime = None

    @classmethod
    def load(cls) -> SystemSettings:
        """Return the settings row, creating it with the defaults on first use."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


@receiver([post_save, post_delete], sender=SystemSettings)
def _forget_token_lifetime(**kwargs: Any) -> None:
    """A saved setting takes effect at once in this process (other processes follow within seconds)."""
    SystemSettings.forget_token_lifetime()


class Outcome(models.TextChoices):
    """Whether an audited operation succeeded."""

    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


# The operations and resource types the portal records, for the Logs pages' filters and the API's checks of them.
AUDIT_OPERATIONS = (
    "add_member", "assign_admin", "change_password", "change_role", "create", "delete", "disable", "export", "finish",
    "import", "lockout", "login", "logout", "provision", "pull", "purge", "push", "reconcile", "remove",
    "remove_member", "restart", "revoke", "start", "state", "stop", "test", "trust", "unassign_admin", "unlock",
    "untrust", "update",
)  # fmt: skip
AUDIT_RESOURCE_TYPES = (
    "api_token", "audit_log", "certificate", "component", "container", "credential", "cve_allowlist", "group", "host",
    "job", "login", "project", "registry", "replication_endpoint", "replication_execution", "replication_rule",
    "repository", "scan", "scanner", "session", "settings", "user", "vulndb",
)  # fmt: skip


class AuditEvent(models.Model):
    """One recorded operation: who did what to which resource, from where, and how it ended."""

    time = models.DateTimeField(default=timezone.now)
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=64)
    resource_name = models.CharField(max_length=512, blank=True)
    project = models.ForeignKey("projects.Project", null=True, blank=True, on_delete=models.SET_NULL)
    # Kept so a project's log still names it after the project row is gone.
    project_name = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.SUCCESS)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        # Each filter of the Logs pages with the list's order behind it, so a filtered page reads its rows in
        # order from one index, however many events there are. Failures are few: a partial index holds them.
        # The free-text search has a trigram index on PostgreSQL (migration 0006; filters.AuditSearchText).
        indexes = [
            models.Index(fields=["-time", "-id"], name="audit_event_time"),
            models.Index(fields=["username", "-time", "-id"], name="audit_event_user"),
            models.Index(fields=["action", "-time", "-id"], name="audit_event_operation"),
            models.Index(fields=["resource_type", "-time", "-id"], name="audit_event_resource_type"),
            models.Index(fields=["project_name", "-time", "-id"], name="audit_event_project"),
            models.Index(fields=["-time", "-id"], condition=models.Q(outcome="failure"), name="audit_event_failure"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.resource_type} {self.resource_name}"


class JobState(models.TextChoices):
    """The life cycle of a background job."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


ACTIVE_JOB_STATES = (JobState.PENDING, JobState.RUNNING, JobState.RETRYING)
FINISHED_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)


class Job(models.Model):
    """A background job's row: its kind and parameters, state, attempts, lease, progress and stop request.

    The log is kept as JobLogLine rows. `exclusive` jobs run one at a time per kind and target: a
    partial unique index refuses a second active one, whatever process tries to create it.
    """

    kind = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    exclusive = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Percent shown in the UI, derived from the units (or set directly by a job that counts steps).
    progress = models.PositiveSmallIntegerField(default=0)
    done_units = models.BigIntegerField(default=0)
    total_units = models.BigIntegerField(default=0)
    done_bytes = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    stop_requested = models.BooleanField(default=False)
    # The worker running the job renews the lease; one that lapsed means the worker was lost.
    lease_expires = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    next_attempt = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        # The jobs list pages by (created, id); a user who is not an admin lists the jobs they started.
        indexes = [
            models.Index(fields=["state", "lease_expires"]),
            models.Index(fields=["kind", "-created"]),
            models.Index(fields=["-created", "-id"], name="job_created"),
            models.Index(fields=["created_by", "-created", "-id"], name="job_created_by"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "target"],
                condition=models.Q(exclusive=True, state__in=["pending", "running", "retrying"]),
                name="one_active_exclusive_job_per_kind_and_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        """True when the job ran to an end, good or bad."""
        return self.state in FINISHED_JOB_STATES

    @property
    def is_stopping(self) -> bool:
        """True while a stop was asked for and the job has not ended yet."""
        return self.stop_requested and not self.is_finished

    @property
    def log(self) -> str:
        """The whole log as text, one stamped line per entry, oldest first."""
        return "".join(line.stamped() for line in self.log_lines.order_by("id"))


class JobLogLine(models.Model):
    """One line of a job's log: when, in which attempt, what."""

    # Indexed with the id below: a job's page reads its log, or its newest lines, in order from that index.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines", db_index=False)
    time = models.DateTimeField(default=timezone.now)
    attempt = models.PositiveIntegerField(default=0)
    text = models.TextField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="job_log_line_order")]

    def __str__(self) -> str:
        return self.stamped().rstrip()

    def stamped(self) -> str:
        """The line as the log shows it: local time, then the text."""
        return f"{timezone.localtime(self.time):%Y-%m-%d %H:%M:%S} {self.text}\n"


class CredentialKind(models.TextChoices):
    """What a credential holds."""

    PASSWORD = "password", "Username and password"
    CERTIFICATE = "certificate", "Certificate"


class Credential(models.Model):
    """A named secret for connecting out: a username and password, or a client certificate and its key.

    The password or private key is stored encrypted (portal.core.secrets); `password()` and
    `private_key_pem()` decrypt it for the code that connects. Nothing else ever shows it.
    A credential without a project is global: only portal administrators manage and use it. A
    project's own credential is managed and used by that project's administrators, for its
    registries and hosts only.
    """

    name = models.CharField(max_length=255, unique=True)
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="credentials"
    )
    kind = models.CharField(max_length=12, choices=CredentialKind.choices)
    username = models.CharField(max_length=255, blank=True)
    certificate_pem = models.TextField("public certificate", blank=True)
    encrypted_secret = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Credential {self.name!r} ({self.kind})>"

    def password(self) -> str:
        """The decrypted password of a username/password credential ("" for a certificate)."""
        from portal.core.secrets import decrypt

        if self.kind != CredentialKind.PASSWORD or not self.encrypted_secret:
            return ""
        return decrypt(self.encrypted_secret)

    def private_key_pem(self) -> str:
        """The decrypted private key PEM of a certificate credential ("" for a password)."""
        from portal.core.secrets import decrypt

        if self.kind != CredentialKind.CERTIFICATE or not self.encrypted_secret:
            return ""
        return decrypt(self.encrypted_secret)


class TrustedCertificate(models.Model):
    """A server certificate an administrator chose to trust for one address ("host:port"): a pin."""

    address = models.CharField(max_length=300, db_index=True)
    pem = models.TextField()
    subject = models.CharField(max_length=1024)
    issuer = models.CharField(max_length=1024)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    sha1 = models.CharField("SHA-1 thumbprint", max_length=59)
    sha256 = models.CharField("SHA-256 thumbprint", max_length=95)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["address", "-created"]
        constraints = [models.UniqueConstraint(fields=["address", "sha256"], name="unique_pin_per_address")]

    def __str__(self) -> str:
        return f"{self.address} ({self.sha256[:23]})"

    @property
    def is_expired(self) -> bool:
        """True once the certificate's validity has ended."""
        return self.not_after <= timezone.now()
