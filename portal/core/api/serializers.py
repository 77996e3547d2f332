"""The core's API serializers: users, groups, identities, settings, audit events, tokens, jobs, credentials,
certificates."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import EmailValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.core import trust
from portal.core.credentials import certificate_info, credential_usages
from portal.core.identities import Disclosure
from portal.core.models import ApiToken, AuditEvent, Credential, Group, Job, SystemSettings, TrustedCertificate, User

CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@extend_schema_field({"type": "string", "pattern": CLOCK_TIME, "example": "03:00"})
class ClockTimeField(serializers.TimeField):
    """A time of day, HH:MM[:SS], on the portal's clock: not an RFC 3339 time, which would need an offset."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(CLOCK_TIME, value):
            self.fail("invalid", format="HH:MM or HH:MM:SS")
        return super().to_internal_value(value)


class Rfc3339DateTimeField(serializers.DateTimeField):
    """A date and time as RFC 3339 says (with its offset), as the schema's `date-time` format promises."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not RFC3339_DATE_TIME.fullmatch(value):
            self.fail("invalid", format="RFC 3339, e.g. 2030-01-31T12:00:00Z")
        return super().to_internal_value(value)


@extend_schema_field({"type": "string", "anyOf": [{"format": "email"}, {"maxLength": 0}]})
class OptionalEmailField(serializers.CharField):
    """An email address, or empty for a user who has none (many directory and local users).

    A CharField that checks the address itself, so the schema keeps `anyOf` rather than a bare `format: email`
    that the empty string would break.
    """

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value:
            EmailValidator(serializers.EmailField.default_error_messages["invalid"])(value)
        return value


class StrictCharField(serializers.CharField):
    """Text that must be sent as a JSON string: DRF would take the number 0 for "0"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonBooleanField(serializers.BooleanField):
    """true or false (or a form's "true"/"false"); DRF would also take the numbers 0 and 1."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)


class UsernameListField(serializers.ManyRelatedField):
    """A list of user names; DRF would take the keys of an object for one.

    Reads the names a list view put in the instance's `usernames_of` dict (field name -> names) when there, so
    a page of groups is not a model instance per member."""

    def get_attribute(self, instance: Any) -> Any:
        names = getattr(instance, "usernames_of", {}).get(self.field_name)
        return names if names is not None else super().get_attribute(instance)

    def to_representation(self, iterable: Any) -> list[Any]:
        return [value if isinstance(value, str) else self.child_relation.to_representation(value) for value in iterable]

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


def usernames(**kwargs: Any) -> UsernameListField:
    """Users by name, as a JSON list."""
    return UsernameListField(
        child_relation=serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all()), **kwargs
    )


class ProjectRoleSerializer(serializers.Serializer):
    """One `{project, role}` pair of a user's or group's projects."""

    project = serializers.CharField()
    role = serializers.CharField()


def _disclosure(context: dict[str, Any]) -> Disclosure:
    """What the request's caller may read of other users, asked of the role matrix once per serializer context."""
    if "disclosure" not in context:
        request = context.get("request")
        context["disclosure"] = Disclosure.to(request.user if request is not None else None)
    return context["disclosure"]


class UserSerializer(serializers.ModelSerializer):
    """A user; `password` is write-only and only used on create. A caller who is not a portal admin reads the
    email and project roles that Disclosure allows."""

    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})
    email = OptionalEmailField(required=False, allow_blank=True, max_length=254)
    projects = serializers.SerializerMethodField()
    groups = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id", "username", "password", "email", "first_name", "last_name", "source", "is_active",
            "is_portal_admin", "date_joined", "last_login", "groups", "projects",
        ]  # fmt: skip
        read_only_fields = ["id", "source", "is_portal_admin", "date_joined", "last_login"]

    def get_projects(self, user: User) -> list[dict[str, str]]:
        return _disclosure(self.context).roles(user.membership_set.all())

    def to_representation(self, user: User) -> dict[str, Any]:
        data = super().to_representation(user)
        if "email" in data:
            data["email"] = _disclosure(self.context).email(user, user.membership_set.all())
        return data

    def get_groups(self, user: User) -> list[str]:
        return [g.name for g in user.wharf_groups.all()]


class GroupSerializer(serializers.ModelSerializer):
    """A group, with its members and projects."""

    name = StrictCharField(max_length=255)
    members = usernames(required=False)
    projects = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["id", "name", "source", "dn", "is_portal_admin", "members", "projects", "created"]
        read_only_fields = ["id", "source", "dn", "is_portal_admin", "created"]

    def get_projects(self, group: Group) -> list[dict[str, str]]:
        return _disclosure(self.context).roles(group.membership_set.all())


class GroupMembersSerializer(serializers.Serializer):
    """The body of PATCH /groups/{name}: the complete new member list, by user name."""

    name = StrictCharField(required=False, help_text="Optional; must be the group's current name.")
    members = usernames()


class IdentitySerializer(serializers.Serializer):
    """A user or group found by the identity search, known to the portal or only in the directory."""

    kind = serializers.CharField(help_text="`user` or `group`")
    name = serializers.CharField()
    full_name = serializers.CharField()
    email = serializers.CharField()
    source = serializers.CharField()
    known = serializers.BooleanField()
    is_portal_admin = serializers.BooleanField()
    projects = ProjectRoleSerializer(many=True)


class SettingsSerializer(serializers.ModelSerializer):
    """System settings (Administration > Configuration)."""

    token_expiration_minutes = serializers.IntegerField(min_value=1, max_value=525600, required=False)
    scan_time = ClockTimeField(required=False)
    audit_retention_days = serializers.IntegerField(min_value=1, max_value=36500, required=False)

    class Meta:
        model = SystemSettings
        fields = ["token_expiration_minutes", "scan_schedule", "scan_time", "audit_retention_days", "updated"]
        read_only_fields = ["updated"]


class AuditEventSerializer(serializers.ModelSerializer):
    """One audit log entry."""

    class Meta:
        model = AuditEvent
        fields = [
            "id", "time", "username", "action", "resource_type", "resource_name", "project_name", "outcome",
            "client_address", "detail",
        ]  # fmt: skip


class TokenSerializer(serializers.ModelSerializer):
    """An API token; the key appears only in the create response."""

    expires = Rfc3339DateTimeField(required=False, allow_null=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "expires", "last_used"]
        read_only_fields = ["id", "prefix", "created", "last_used"]


class JobSerializer(serializers.ModelSerializer):
    """A background job with its state, attempts and progress (its parameters stay inside: they may hold secrets)."""

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "target",
            "parent",
            "state",
            "attempts",
            "progress",
            "done_units",
            "total_units",
            "done_bytes",
            "total_bytes",
            "stop_requested",
            "created",
            "started",
            "finished",
            "next_attempt",
            "error",
            "created_by",
        ]


class JobDetailSerializer(JobSerializer):
    """One job, with its whole log."""

    log = serializers.CharField(read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log"]


SECRET = {"write_only": True, "required": False, "allow_blank": True, "trim_whitespace": False}


class CredentialSerializer(serializers.ModelSerializer):
    """A credential as its owners see it: everything but the secret, which is write-only.

    `project` names the project whose own credential it is (its administrators manage and use it);
    none makes a global credential, for portal administrators only.
    """

    project = serializers.CharField(source="project.name", required=False, allow_null=True, default=None)
    password = serializers.CharField(style={"input_type": "password"}, **SECRET)
    private_key = serializers.CharField(style={"base_template": "textarea.html"}, **SECRET)
    certificate = serializers.CharField(source="certificate_pem", required=False, allow_blank=True)
    certificate_subject = serializers.SerializerMethodField()
    certificate_not_after = serializers.SerializerMethodField()
    used_by = serializers.SerializerMethodField()

    class Meta:
        model = Credential
        fields = [
            "id", "name", "kind", "project", "username", "password", "certificate", "private_key",
            "certificate_subject", "certificate_not_after", "used_by", "created", "updated", "created_by",
        ]  # fmt: skip
        read_only_fields = ["id", "created", "updated", "created_by"]
        extra_kwargs = {"name": {"validators": []}, "kind": {"required": False}}

    def get_certificate_subject(self, credential: Credential) -> str | None:
        return certificate_info(credential.certificate_pem).subject if credential.certificate_pem else None

    def get_certificate_not_after(self, credential: Credential) -> str | None:
        if not credential.certificate_pem:
            return None
        return certificate_info(credential.certificate_pem).not_after.isoformat()

    def get_used_by(self, credential: Credential) -> list[str]:
        return credential_usages(credential)


class CredentialListSerializer(CredentialSerializer):
    """A credential in the list: without `used_by`, which asks every registered user and so costs queries per row."""

    class Meta(CredentialSerializer.Meta):
        fields = [f for f in CredentialSerializer.Meta.fields if f != "used_by"]


class TrustedCertificateSerializer(serializers.ModelSerializer):
    """A pinned server certificate with its details and where it is used."""

    used_by = serializers.SerializerMethodField()

    class Meta:
        model = TrustedCertificate
        fields = [
            "id", "address", "subject", "issuer", "not_before", "not_after", "sha1", "sha256", "pem", "used_by",
            "created", "created_by",
        ]  # fmt: skip

    def get_used_by(self, certificate: TrustedCertificate) -> list[str]:
        return trust.certificate_usages(certificate)


class TrustedCertificateListSerializer(TrustedCertificateSerializer):
    """A pinned certificate in the list: without `used_by` (queries per row); GET one to see it."""

    class Meta(TrustedCertificateSerializer.Meta):
        fields = [f for f in TrustedCertificateSerializer.Meta.fields if f != "used_by"]


class TrustRequestSerializer(serializers.Serializer):
    """POST /certificates: `{address, pem}` pins that certificate; `{url}` pins what the server presents.

    With `url`, an optional `sha256` makes sure the presented certificate is the one the caller
    verified; `project` lets that project's admins trust a certificate for its registries.
    """

    address = serializers.CharField(required=False)
    pem = serializers.CharField(required=False)
    url = serializers.CharField(required=False)
    sha256 = serializers.CharField(required=False)
    project = serializers.CharField(required=False)


class FetchRequestSerializer(serializers.Serializer):
    """POST /certificates/fetch: the URL whose certificate to show."""

    url = serializers.CharField()


class LoginLockoutSerializer(serializers.Serializer):
    """A user name or client address the login throttle refuses until `until`."""

    kind = serializers.CharField(help_text="`user` or `address`")
    value = serializers.CharField()
    failures = serializers.IntegerField()
    until = serializers.DateTimeField()


class UnlockSerializer(serializers.Serializer):
    """Whom to let log in again: a user name, a client address, or both."""

    username = serializers.CharField(required=False, allow_blank=True, default="")
    address = serializers.CharField(required=False, allow_blank=True, default="")
