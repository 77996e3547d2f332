"""API serializers of projects, members and their project roles."""

from __future__ import annotations

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.core.api.serializers import JsonBooleanField
from projects.models import Membership, Project, Role, Severity
from projects.roles import roles_by_project


@extend_schema_field(
    {"type": "string", "minLength": 2, "maxLength": 255, "pattern": r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$"}
)
class ProjectNameField(serializers.CharField):
    """A project name as the schema states it; the projects service enforces the rule (projects.models)."""


class ProjectSerializer(serializers.ModelSerializer):
    """A project with its configuration, member count and the caller's role."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: JsonBooleanField,
    }
    name = ProjectNameField(allow_blank=True)  # the service judges the name, with the rule in its message
    member_count = serializers.IntegerField(read_only=True)
    current_user_role = serializers.SerializerMethodField()
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)

    class Meta:
        model = Project
        fields = [
            "id", "name", "public", "content_trust", "prevent_vulnerable", "severity", "auto_scan",
            "created", "created_by", "member_count", "current_user_role",
        ]  # fmt: skip
        read_only_fields = ["id", "created", "created_by"]

    def get_current_user_role(self, project: Project) -> str | None:
        """The caller's effective role in the project, if any (one query for a whole page)."""
        if "roles" not in self.context:
            self.context["roles"] = roles_by_project(self.context["request"].user)
        role = self.context["roles"].get(project.pk)
        return role.value if role else None


class MemberSerializer(serializers.ModelSerializer):
    """A member: `{"user": "alice"}` or `{"group": "devs"}` with a role."""

    user = serializers.CharField(required=False, allow_null=True, source="user.username")
    group = serializers.CharField(required=False, allow_null=True, source="group.name")
    role = serializers.ChoiceField(choices=Role.choices)
    member_type = serializers.CharField(read_only=True)
    member_name = serializers.CharField(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "group", "member_type", "member_name", "role", "created"]
        read_only_fields = ["id", "created"]


class MemberRoleSerializer(serializers.Serializer):
    """A member's new role."""

    role = serializers.ChoiceField(choices=Role.choices)
