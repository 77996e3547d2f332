"""API serializers of replication: endpoints, rules, executions and their tasks.

An execution's and a task's state, attempts, progress, times and error are their job's, shown by the fields of
the job API (JobSerializer) read through `job.`; a task's log is its job's log.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.core.api.serializers import SECRET, JobSerializer, JsonBooleanField, StrictCharField
from projects.models import Project
from replication.models import Endpoint, EndpointKind, Execution, Rule, Task, Trigger


def job_fields(**names: str) -> dict[str, serializers.Field]:
    """{shown name: the job API's field of that job field}, read-only, read from the row's `job`."""
    shown = JobSerializer().fields
    return {name: _read_only(shown[field], f"job.{field}") for name, field in names.items()}


def _read_only(field: serializers.Field, source: str) -> serializers.Field:
    """A read-only copy of the field reading `source`."""
    kwargs = {key: value for key, value in field._kwargs.items() if key not in ("required", "validators", "default")}
    return type(field)(*field._args, **{**kwargs, "source": source, "read_only": True})


JOB_STATE = {"state": "state", "progress": "progress", "started": "started", "finished": "finished"}
JOB_RUN = {**JOB_STATE, "attempts": "attempts", "stop_requested": "stop_requested", "error": "error"}


# --- endpoints ------------------------------------------------------------------------------------------


class EndpointSerializer(serializers.ModelSerializer):
    """An endpoint with the user name it logs in with (never the password) and the rules that use it."""

    username = serializers.SerializerMethodField()
    used_by = serializers.SlugRelatedField(slug_field="name", source="rules", many=True, read_only=True)

    class Meta:
        model = Endpoint
        fields = ["name", "kind", "url", "username", "verify_remote_cert", "last_checked", "used_by", "created",
                  "created_by"]  # fmt: skip
        read_only_fields = fields

    def get_username(self, endpoint: Endpoint) -> str:
        """The user name of the endpoint's login; empty for an anonymous endpoint."""
        return endpoint.credential.username if endpoint.credential else ""


class EndpointInputSerializer(serializers.Serializer):
    """What New Endpoint takes (and an edit, any of it): the connection is tested before anything is saved."""

    name = StrictCharField(max_length=100)
    url = StrictCharField(max_length=255, help_text="scheme://host[:port] of the registry, without a path")
    kind = serializers.ChoiceField(choices=EndpointKind.choices, default=EndpointKind.WHARF)
    username = StrictCharField(max_length=150, required=False, allow_blank=True, help_text="Empty: anonymous")
    password = StrictCharField(**SECRET, max_length=4096, help_text="Write-only; on an edit, empty keeps the saved one")
    verify_remote_cert = JsonBooleanField(default=True)


class PingSerializer(EndpointInputSerializer):
    """Test Connection without saving; `endpoint` names a saved one whose password is used when none is given."""

    name = None
    url = StrictCharField(max_length=255, required=False, help_text="Default: the named endpoint's URL")
    endpoint = serializers.SlugRelatedField(
        slug_field="name", queryset=Endpoint.objects.all(), required=False, allow_null=True
    )


class ProbeSerializer(serializers.Serializer):
    """What Test Connection found."""

    api = serializers.CharField(help_text="v2, or wharf for another Wharf")
    auth = serializers.CharField(help_text="none, basic or bearer")
    user = serializers.CharField(help_text="The login's user name; empty when anonymous")
    is_admin = serializers.BooleanField(allow_null=True, help_text="On a Wharf: whether the login is its admin")
    can_create_projects = serializers.BooleanField(allow_null=True)
    message = serializers.CharField()


# --- rules ----------------------------------------------------------------------------------------------


class LastExecutionSerializer(serializers.ModelSerializer):
    """The newest execution of a rule, in short."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **job_fields(**JOB_STATE)}

    class Meta:
        model = Execution
        fields = ["id", "cause", "created"]
        read_only_fields = fields


class RuleSerializer(serializers.ModelSerializer):
    """A rule with its project and endpoint by name, where it writes, and how its newest execution went."""

    project = serializers.CharField(source="project.name", read_only=True)
    endpoint = serializers.CharField(source="endpoint.name", read_only=True)
    destination = serializers.CharField(read_only=True, help_text="The project written to on the endpoint")
    last_execution = serializers.SerializerMethodField()

    class Meta:
        model = Rule
        fields = [
            "name", "description", "project", "repository_filter", "tag_filter", "endpoint", "destination_project",
            "destination", "trigger", "cron", "replicate_deletion", "enabled", "last_execution", "created",
            "created_by", "updated",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(LastExecutionSerializer(allow_null=True))
    def get_last_execution(self, rule: Rule) -> dict[str, Any] | None:
        """The newest execution (prefetched by the view as `latest`), or None before the first run."""
        latest = rule.latest if hasattr(rule, "latest") else list(rule.executions.select_related("job")[:1])
        return LastExecutionSerializer(latest[0]).data if latest else None


class RuleInputSerializer(serializers.Serializer):
    """What New Rule takes (and an edit of a disabled rule, any of it; `enabled` alone enables or disables)."""

    name = StrictCharField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True, max_length=2000)
    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    endpoint = serializers.SlugRelatedField(slug_field="name", queryset=Endpoint.objects.all())
    repository_filter = StrictCharField(required=False, allow_blank=True, max_length=255, help_text="e.g. web/*")
    tag_filter = StrictCharField(required=False, allow_blank=True, max_length=128, help_text="e.g. 1.*")
    destination_project = StrictCharField(
        required=False, allow_blank=True, max_length=255, help_text="Empty: the source project's name"
    )
    trigger = serializers.ChoiceField(choices=Trigger.choices, default=Trigger.MANUAL)
    cron = StrictCharField(required=False, allow_blank=True, max_length=100, help_text="Scheduled: '0 2 * * *'")
    replicate_deletion = JsonBooleanField(required=False, help_text="Immediate rules only")
    enabled = JsonBooleanField(default=True)


# --- executions and tasks -------------------------------------------------------------------------------


class ExecutionSerializer(serializers.ModelSerializer):
    """One run of a rule: its job's state and progress, its tasks counted by state, bytes moved."""

    rule = serializers.CharField(source="rule.name", read_only=True)
    project = serializers.CharField(source="rule.project.name", read_only=True)
    tasks_total = serializers.IntegerField(read_only=True)
    tasks_pending = serializers.IntegerField(read_only=True)
    tasks_running = serializers.IntegerField(read_only=True)
    tasks_succeeded = serializers.IntegerField(read_only=True)
    tasks_failed = serializers.IntegerField(read_only=True)
    tasks_stopped = serializers.IntegerField(read_only=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        job = job_fields(**JOB_RUN, bytes_done="done_bytes", bytes_total="total_bytes", created_by="created_by")
        return {**super().get_fields(), **job}

    class Meta:
        model = Execution
        fields = [
            "id", "rule", "project", "cause", "created", "tasks_total", "tasks_pending", "tasks_running",
            "tasks_succeeded", "tasks_failed", "tasks_stopped",
        ]  # fmt: skip
        read_only_fields = fields


class TaskSerializer(serializers.ModelSerializer):
    """One repository of an execution: what it copies (or deletes) where, its job's state and every counter."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **job_fields(**JOB_RUN, bytes_done="done_bytes", bytes_total="total_bytes")}

    class Meta:
        model = Task
        fields = ["id", "repository", "destination", "operation", "tags", *Task.COUNTERS]
        read_only_fields = fields
