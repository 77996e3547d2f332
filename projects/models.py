"""Projects and their members."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinLengthValidator, RegexValidator
from django.db import models
from django.utils import timezone

from portal.core import permissions

# A valid first component of a Docker repository name: lowercase letters and digits,
# separated by single '.', '_', '__' or '-' runs (distribution's reference grammar).
PROJECT_NAME_RULE = "lowercase letters and digits, separated by '.', '_' or '-', 2 to 255 characters"
PROJECT_NAME_MIN_MESSAGE = f"Project names use {PROJECT_NAME_RULE}."
project_name_validator = RegexValidator(
    r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*\Z",
    f"Project names use {PROJECT_NAME_RULE}, starting and ending with a letter or digit.",
)


class Severity(models.TextChoices):
    """Vulnerability severities, lowest first."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Role(models.TextChoices):
    """A member's role in a project, the strongest first."""

    ADMIN = "admin", "DevOps administrator"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


class RestrictedQuerySet(models.QuerySet):
    """Rows that belong to a project, with `restrict(user, action)` keeping those a user may act on.

    As NetBox's RestrictedQuerySet: list views and viewsets start from `restrict`, so a row the
    user may not see is a 404. A subclass names the lookup from its rows to their project.
    """

    # The lookup from a row to its project ("" for projects themselves), and the action asked by default.
    project_path = "project"
    default_action = "view"

    def restrict(self, user: settings.AUTH_USER_MODEL | None, action: str | None = None) -> models.QuerySet:
        """Only the rows of projects on which `user` may take `action` (the role matrix of projects.roles)."""
        action = action or self.default_action
        if not self.project_path:
            return permissions.restrict_projects(self, user, action)
        if permissions.is_portal_admin(user):
            # Every row: no `project IN (every project)` to stop the database reading a list off its order's index.
            return self.all()
        return self.filter(**{f"{self.project_path}__in": permissions.visible_projects(user, action)})


class ProjectQuerySet(RestrictedQuerySet):
    """Projects, restricted to those a user may see (or take another action on)."""

    project_path = ""

    def with_member_counts(self) -> ProjectQuerySet:
        """With `member_count`, by name: a subquery, so only the page's projects have their members counted."""
        members = Membership.objects.filter(project=models.OuterRef("pk")).order_by()
        count = members.values(count=models.Func(template="COUNT(*)", output_field=models.IntegerField()))
        return self.annotate(member_count=models.Subquery(count, output_field=models.IntegerField())).order_by("name")


class Project(models.Model):
    """A unit of isolation: members with roles, repositories, registries, hosts and policies."""

    name = models.CharField(
        max_length=255,
        unique=True,
        validators=[MinLengthValidator(2, PROJECT_NAME_MIN_MESSAGE), project_name_validator],
    )
    public = models.BooleanField(default=False)
    content_trust = models.BooleanField("Enable content trust", default=False)
    prevent_vulnerable = models.BooleanField("Prevent vulnerable images from running", default=False)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.HIGH)
    auto_scan = models.BooleanField("Automatically scan images on push", default=False)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's or a group's role in one project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    group = models.ForeignKey("portal.Group", null=True, blank=True, on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=Role.choices)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project__name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_user_member"),
            models.UniqueConstraint(fields=["project", "group"], name="unique_group_member"),
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="member_is_user_or_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_name} ({self.role}) in {self.project.name}"

    @property
    def member_name(self) -> str:
        """The user or group name."""
        return self.user.username if self.user_id else self.group.name

    @property
    def member_type(self) -> str:
        """'user' or 'group'."""
        return "user" if self.user_id else "group"


class ProjectSelection(models.Model):
    """The project a user picked in the header's selector, kept across logins (a session forgets it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="project_selection"
    )
    # Deleting the project drops the pick: the user then starts again on the project of their highest role.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    changed = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id} -> {self.project_id}"
