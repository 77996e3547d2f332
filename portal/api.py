"""REST API of the administration core: system info, users, groups, settings, audit logs, tokens, jobs."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import directory, jobs, services
from portal.audit import Actor
from portal.certificates import ca_info
from portal.errors import Forbidden, Invalid
from portal.filters import AuditEventFilterSet, GroupFilterSet, UserFilterSet
from portal.identities import search_identities
from portal.models import ApiToken, AuditEvent, Group, Job, SystemSettings, User
from projects import services as project_services
from projects.models import Membership
from projects.roles import can, is_portal_admin


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([AllowAny])
def systeminfo(request: Request) -> Response:
    """Version, auth mode and the portal CA's thumbprints; readable without login."""
    ca = ca_info()
    return Response(
        {
            "version": settings.VERSION,
            "auth_mode": "ldap_auth" if directory.is_configured() else "db_auth",
            "ca_subject": ca.subject,
            "ca_not_after": ca.not_after,
            "ca_sha1": ca.sha1,
            "ca_sha256": ca.sha256,
        }
    )


@extend_schema(responses={(200, "application/x-pem-file"): str})
@api_view(["GET"])
@permission_classes([AllowAny])
def systeminfo_ca(request: Request) -> HttpResponse:
    """The portal CA (the registry root certificate) as PEM, to download."""
    response = HttpResponse(ca_info().pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = 'attachment; filename="ca.crt"'
    return response


class ProjectRoleSerializer(serializers.Serializer):
    """One `{project, role}` pair of a user's or group's projects."""

    project = serializers.CharField()
    role = serializers.CharField()


def _project_roles(memberships: list[Membership]) -> list[dict[str, str]]:
    return [{"project": m.project.name, "role": m.role} for m in memberships]


class UserSerializer(serializers.ModelSerializer):
    """A user; `password` is write-only and only used on create."""

    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})
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
        return _project_roles(user.membership_set.all())

    def get_groups(self, user: User) -> list[str]:
        return [g.name for g in user.wharf_groups.all()]


class UserViewSet(viewsets.ModelViewSet):
    """Users: portal admins manage them; project admins may search them to add members."""

    serializer_class = UserSerializer
    filterset_class = UserFilterSet
    lookup_field = "username"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[User]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return User.objects.none()
        user = self.request.user
        if not can(user, "view_project_users"):
            raise Forbidden("Only administrators may list users.")
        return User.objects.prefetch_related(
            "wharf_groups", Prefetch("membership_set", queryset=Membership.objects.select_related("project"))
        )

    def get_object(self) -> User:
        username = self.kwargs["username"]
        if self.request.user.username == username:
            return self.request.user
        return super().get_object()

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if not data.get("password"):
            raise Invalid("A password is required.", {"password": ["This field is required."]})
        user = services.create_user(Actor.from_request(request), data.pop("username"), data.pop("password"), **data)
        return Response(self.get_serializer(user).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        user = self.get_object()
        serializer = self.get_serializer(user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("password", None)
        if data.pop("username", user.username) != user.username:
            raise Invalid("A user cannot be renamed.", {"username": ["A user cannot be renamed."]})
        services.update_user(Actor.from_request(request), user, **data)
        return Response(self.get_serializer(user).data)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_user(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["put", "delete"])
    def admin(self, request: Request, username: str) -> Response:
        """PUT assigns, DELETE removes the Management Portal administrator role."""
        user = _known_user(request, username)
        services.set_user_admin(Actor.from_request(request), user, request.method == "PUT")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ProjectRoleSerializer(many=True), responses=ProjectRoleSerializer(many=True))
    @action(detail=True, methods=["get", "put"])
    def projects(self, request: Request, username: str) -> Response:
        """The user's projects and roles; PUT replaces them with the given list."""
        if request.method == "GET":
            user = self.get_object()
            return Response(_project_roles(user.membership_set.select_related("project")))
        user = _known_user(request, username)
        return Response(_assign_projects(request, user=user))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["put"])
    def password(self, request: Request, username: str) -> Response:
        """Change a password: `{old_password, new_password}` for yourself; admins omit the old one."""
        user = self.get_object()
        services.change_password(
            Actor.from_request(request),
            user,
            str(request.data.get("new_password", "")),
            request.data.get("old_password"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _known_user(request: Request, username: str) -> User:
    """The user to act on; directory users that never logged in are created from the directory."""
    if not is_portal_admin(request.user):
        raise Forbidden("Only Management Portal administrators may do this.")
    return directory.ensure_user(username)


def _assign_projects(request: Request, user: User | None = None, group: Group | None = None) -> list[dict[str, str]]:
    """Replace the subject's project roles with the request body's list."""
    serializer = ProjectRoleSerializer(data=request.data, many=True)
    serializer.is_valid(raise_exception=True)
    pairs = [(item["project"], item["role"]) for item in serializer.validated_data]
    memberships = project_services.set_member_projects(Actor.from_request(request), pairs, user=user, group=group)
    return _project_roles(memberships)


class GroupSerializer(serializers.ModelSerializer):
    """A group, with its members and projects."""

    members = serializers.SlugRelatedField(
        slug_field="username", many=True, queryset=User.objects.all(), required=False
    )
    projects = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["id", "name", "source", "dn", "is_portal_admin", "members", "projects", "created"]
        read_only_fields = ["id", "source", "dn", "is_portal_admin", "created"]

    def get_projects(self, group: Group) -> list[dict[str, str]]:
        return _project_roles(group.membership_set.all())


class GroupMembersSerializer(serializers.Serializer):
    """The body of PATCH /groups/{name}: the complete new member list, by user name."""

    name = serializers.CharField(required=False, help_text="Optional; must be the group's current name.")
    members = serializers.SlugRelatedField(slug_field="username", many=True, queryset=User.objects.all())


class GroupViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Groups known to the portal (local, and directory groups that hold a role)."""

    serializer_class = GroupSerializer
    filterset_class = GroupFilterSet
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet[Group]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Group.objects.none()
        if not can(self.request.user, "view_project_users"):
            raise Forbidden("Only administrators may list groups.")
        return Group.objects.prefetch_related(
            "members", Prefetch("membership_set", queryset=Membership.objects.select_related("project"))
        )

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        group = services.create_group(Actor.from_request(request), data["name"], data.get("members", []))
        return Response(self.get_serializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GroupMembersSerializer, responses=GroupSerializer)
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """PATCH `{"members": [...]}` replaces a local group's members; directory groups are refused."""
        group = self.get_object()
        serializer = GroupMembersSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data.get("name", group.name) != group.name:
            raise Invalid("A group cannot be renamed.", {"name": ["A group cannot be renamed."]})
        services.update_group_members(Actor.from_request(request), group, serializer.validated_data["members"])
        return Response(self.get_serializer(self.get_object()).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Delete the group and its project roles; a directory group comes back when a member logs in."""
        services.delete_group(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["put", "delete"])
    def admin(self, request: Request, name: str) -> Response:
        """PUT assigns, DELETE removes the administrator role of the group (and so of its members)."""
        group = _known_group(request, name)
        services.set_group_admin(Actor.from_request(request), group, request.method == "PUT")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ProjectRoleSerializer(many=True), responses=ProjectRoleSerializer(many=True))
    @action(detail=True, methods=["put"])
    def projects(self, request: Request, name: str) -> Response:
        """Replace the group's project roles with the given list."""
        return Response(_assign_projects(request, group=_known_group(request, name)))


def _known_group(request: Request, name: str) -> Group:
    if not is_portal_admin(request.user):
        raise Forbidden("Only Management Portal administrators may do this.")
    return directory.ensure_group(name)


class IdentitySerializer(serializers.Serializer):
    """A user or group found by the identity search, known to the portal or only in the directory."""

    kind = serializers.CharField()
    name = serializers.CharField()
    full_name = serializers.CharField()
    email = serializers.CharField()
    source = serializers.CharField()
    known = serializers.BooleanField()
    is_portal_admin = serializers.BooleanField()
    projects = ProjectRoleSerializer(many=True)


class IdentityView(APIView):
    """`/identities?q=`: local users, known groups and directory entries matching the text."""

    @extend_schema(responses=IdentitySerializer(many=True))
    def get(self, request: Request) -> Response:
        if not can(request.user, "view_project_users"):
            raise Forbidden("Only administrators may search users and groups.")
        results = search_identities(request.query_params.get("q", ""))
        return Response(
            {
                "count": len(results.entries),
                "next": None,
                "previous": None,
                "warning": results.warning,
                "results": [e.as_dict() for e in results.entries],
            }
        )


class SettingsSerializer(serializers.ModelSerializer):
    """System settings (Administration > Configuration)."""

    token_expiration_minutes = serializers.IntegerField(min_value=1, max_value=525600, required=False)
    audit_retention_days = serializers.IntegerField(min_value=1, max_value=36500, required=False)

    class Meta:
        model = SystemSettings
        fields = ["token_expiration_minutes", "scan_schedule", "scan_time", "audit_retention_days", "updated"]
        read_only_fields = ["updated"]


class SettingsView(APIView):
    """GET the system settings (portal admins); PATCH changes them."""

    serializer_class = SettingsSerializer

    def _check(self, request: Request) -> None:
        if not can(request.user, "manage_system"):
            raise Forbidden("Only Management Portal administrators may see system settings.")

    def get(self, request: Request) -> Response:
        self._check(request)
        return Response(SettingsSerializer(SystemSettings.load()).data)

    def patch(self, request: Request) -> Response:
        self._check(request)
        serializer = SettingsSerializer(SystemSettings.load(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        current = services.update_settings(Actor.from_request(request), **serializer.validated_data)
        return Response(SettingsSerializer(current).data)


class AuditEventSerializer(serializers.ModelSerializer):
    """One audit log entry."""

    class Meta:
        model = AuditEvent
        fields = [
            "id", "time", "username", "action", "resource_type", "resource_name", "project_name", "outcome",
            "client_address", "detail",
        ]  # fmt: skip


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log: portal admins see all; project members see their projects' events."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return AuditEvent.objects.none()
        from projects.models import Project

        events = AuditEvent.objects.all()
        if can(self.request.user, "view_all_logs"):
            return events
        visible = Project.objects.restrict(self.request.user, "view").values("pk")
        if not self.request.query_params.get("project"):
            raise Forbidden("Only Management Portal administrators may see all logs; give ?project=.")
        return events.filter(project__in=visible)


class TokenSerializer(serializers.ModelSerializer):
    """An API token; the key appears only in the create response."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "expires", "last_used"]
        read_only_fields = ["id", "prefix", "created", "last_used"]


class TokenViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens: create (key shown once), list, revoke."""

    serializer_class = TokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = services.create_token(Actor.from_request(request), **serializer.validated_data)
        return Response({**self.get_serializer(token).data, "token": key}, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.revoke_token(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


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


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Jobs: portal admins see all, everyone else the jobs they started; POST /jobs/directory-sync starts a sync."""

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return JobSerializer if self.action == "list" else JobDetailSerializer

    def get_queryset(self) -> QuerySet[Job]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Job.objects.none()
        if can(self.request.user, "manage_system"):
            return Job.objects.all()
        # A developer follows the container jobs they started (provisioning, start/stop) like an admin follows GC.
        return Job.objects.filter(created_by=self.request.user.get_username())

    @extend_schema(request=None, responses={202: JobDetailSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Stop the job: one not running yet ends now, a running one at its next checkpoint."""
        job = jobs.request_stop(Actor.from_request(request), self.get_object())
        return Response(JobDetailSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=False, methods=["post"], url_path="directory-sync")
    def directory_sync(self, request: Request) -> Response:
        """Start a directory sync now."""
        job = services.start_directory_sync(Actor.from_request(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
