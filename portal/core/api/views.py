"""The core's REST API: system info, users, groups, identities, settings, audit logs, tokens, jobs,
credentials and certificates."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core import components, credentials, directory, jobs, services, throttle, trust
from portal.core.addresses import parse_url
from portal.core.api.serializers import (
    AuditEventSerializer,
    CredentialListSerializer,
    CredentialSerializer,
    FetchRequestSerializer,
    GroupMembersSerializer,
    GroupSerializer,
    IdentitySerializer,
    JobDetailSerializer,
    JobSerializer,
    LoginLockoutSerializer,
    SettingsSerializer,
    TokenSerializer,
    TrustedCertificateListSerializer,
    TrustedCertificateSerializer,
    TrustRequestSerializer,
    UnlockSerializer,
    UserSerializer,
)
from portal.core.audit import Actor
from portal.core.certificates import ca_info
from portal.core.credentials import certificate_info, visible_credentials
from portal.core.errors import Conflict, Forbidden, Invalid, NotFound
from portal.core.filters import AuditEventFilterSet, GroupFilterSet, UserFilterSet
from portal.core.identities import SORTS, search_identities, sort_key
from portal.core.models import (
    ApiToken,
    AuditEvent,
    Credential,
    CredentialKind,
    Group,
    Job,
    SystemSettings,
    TrustedCertificate,
    User,
)
from portal.core.pagination import CursorPagination
from portal.core.permissions import can, visible_projects
from portal.core.services import require


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([AllowAny])
def systeminfo(request: Request) -> Response:
    """Version, auth mode, the portal CA's thumbprints, notary and the health of the portal's parts; readable
    without login.

    `components` is what the launcher of `make run` knows of web, worker, beat, the registry and notary (empty
    when no launcher supervises them, as under docker compose). `notary_url` is DOCKER_CONTENT_TRUST_SERVER;
    `notary_state` is running, starting, restarting, off (the launcher left it off; Configuration says why) or
    external (docker compose runs it); `with_notary` (Harbor's name) is whether this deployment has notary.
    """
    ca = ca_info()
    statuses = components.read()
    notary_state, _ = components.summary(components.NOTARY, statuses)
    return Response(
        {
            "version": settings.VERSION,
            "auth_mode": "ldap_auth" if directory.is_configured() else "db_auth",
            "ca_subject": ca.subject,
            "ca_not_after": ca.not_after,
            "ca_sha1": ca.sha1,
            "ca_sha256": ca.sha256,
            "with_notary": notary_state != components.OFF,
            "notary_url": settings.NOTARY_URL,
            "notary_state": notary_state,
            # Parts left off are in notary_state; their reason (addresses, logins) is for Configuration's admins.
            "components": {name: asdict(status) for name, status in statuses.items() if status.state != components.OFF},
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
        return User.objects.prefetch_related("wharf_groups", "membership_set__project")

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
    """The user an administrator acts on (directory users that never logged in are created)."""
    return services.admin_subject(Actor.from_request(request), "user", username)


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
        # One group (retrieve) reads its members itself; a page of them gets their names in paginate_queryset.
        return Group.objects.prefetch_related("membership_set__project")

    def paginate_queryset(self, queryset: QuerySet[Group]) -> list[Group] | None:
        page = super().paginate_queryset(queryset)
        if page is not None:
            # Members are listed by name only: a User instance for every member of every group of the page
            # cost most of the request; one query of (group, name) pairs does not.
            names: dict[int, list[str]] = {group.pk: [] for group in page}
            pairs = Group.members.through.objects.filter(group_id__in=names).order_by("user__username")
            for group_id, username in pairs.values_list("group_id", "user__username"):
                names[group_id].append(username)
            for group in page:
                group.usernames_of = {"members": names[group.pk]}
        return page

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


def _known_group(request: Request, name: str) -> Group:
    """The group an administrator acts on (directory groups are created on first use)."""
    return services.admin_subject(Actor.from_request(request), "group", name)


class IdentityView(APIView):
    """`/identities?q=`: local users, known groups and directory entries matching the text."""

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Text in the name, full name or email"),
            OpenApiParameter(
                "sort",
                str,
                enum=["", *sorted(SORTS), *sorted(f"-{key}" for key in SORTS)],
                description="Order: a column, `-` before it for descending; empty for the default order",
            ),
        ],
        responses=inline_serializer(
            "IdentitySearch",
            {
                "count": serializers.IntegerField(),
                "next": serializers.CharField(allow_null=True, help_text="Always null: one page holds them all."),
                "previous": serializers.CharField(allow_null=True, help_text="Always null."),
                "warning": serializers.CharField(help_text="Why the directory's entries are missing, or empty."),
                "results": IdentitySerializer(many=True),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        if not can(request.user, "view_project_users"):
            raise Forbidden("Only administrators may search users and groups.")
        sort = request.query_params.get("sort", "").strip()
        if sort and not sort_key(sort):
            raise Invalid(f"'{sort}' is not a sort key.", {"sort": [f"Use one of {', '.join(sorted(SORTS))}."]})
        results = search_identities(request.query_params.get("q", ""), request.user, sort=sort)
        return Response(
            {
                "count": len(results.entries),
                "next": None,
                "previous": None,
                "warning": results.warning,
                "results": [e.as_dict() for e in results.entries],
            }
        )


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


class LoginLockoutView(APIView):
    """GET the user names and client addresses the login throttle refuses now (portal admins)."""

    serializer_class = LoginLockoutSerializer

    @extend_schema(responses={200: LoginLockoutSerializer(many=True)})
    def get(self, request: Request) -> Response:
        require(Actor.from_request(request), "manage_users")
        return Response(LoginLockoutSerializer(throttle.current_lockouts(), many=True).data)


@extend_schema(request=UnlockSerializer, responses={200: dict})
@api_view(["POST"])
def unlock_logins(request: Request) -> Response:
    """Let a locked-out user name and/or client address log in again: `{username, address}` (portal admins)."""
    serializer = UnlockSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    cleared = services.unlock_logins(Actor.from_request(request), **serializer.validated_data)
    return Response({"cleared": cleared})


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log, newest first: portal admins see all; project members see their projects' events.

    Paged by `?cursor=` (follow `next`), without a count: the log grows without bound.
    """

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    pagination_class = CursorPagination

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return AuditEvent.objects.none()
        events = AuditEvent.objects.all()
        if can(self.request.user, "view_all_logs"):
            return events
        visible = visible_projects(self.request.user).values("pk")
        if not self.request.query_params.get("project"):
            raise Forbidden("Only Management Portal administrators may see all logs; give ?project=.")
        return events.filter(project__in=visible)


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


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Jobs, newest first: portal admins see all, everyone else the jobs they started; POST /jobs/directory-sync
    starts a sync.

    The list leaves out the logs (GET /jobs/{id} has the job's log) and is paged by `?cursor=`, without a count.
    """

    pagination_class = CursorPagination

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


def _secret_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The serializer's validated data as the keyword arguments of the credential services."""
    fields = dict(data)
    if "certificate_pem" in fields:
        fields["certificate"] = fields.pop("certificate_pem")
    return fields


class CredentialViewSet(viewsets.ModelViewSet):
    """Credentials: portal admins manage them; admins of any project list names and kinds to pick one."""

    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Credential]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return Credential.objects.none()
        if not can(self.request.user, "view_project_users"):
            raise Forbidden("Only administrators may see credentials.")
        return visible_credentials(self.request.user).select_related("project")

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return CredentialListSerializer if self.action == "list" else CredentialSerializer

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = CredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = _secret_fields(serializer.validated_data)
        kind = data.pop("kind", "")
        if not kind:
            raise Invalid("A kind is required.", {"kind": [f"Choose one of {', '.join(CredentialKind.values)}."]})
        project = _project(request, (data.pop("project", None) or {}).get("name"))
        actor = Actor.from_request(request)
        credential = credentials.create_credential(actor, data.pop("name"), kind, project=project, **data)
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        credential = self.get_object()
        serializer = CredentialSerializer(credential, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = _secret_fields(serializer.validated_data)
        moved = data.pop("project", None)
        if "project" in request.data and (moved or {}).get("name") != getattr(credential.project, "name", None):
            message = "A credential stays with its project (or global)."
            raise Invalid(message, {"project": ["Create a new credential instead."]})
        if data.pop("kind", credential.kind) != credential.kind:
            raise Invalid("The kind of a credential cannot change.", {"kind": ["Create a new credential instead."]})
        credentials.update_credential(Actor.from_request(request), credential, **data)
        return Response(CredentialSerializer(credential).data)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Delete a credential; refused (409) while a registry, host or endpoint uses it."""
        credentials.delete_credential(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class CertificateViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Trusted server certificates: portal admins list and untrust them; POST trusts one."""

    remote_errors = True  # trusting, fetching and checking by URL connect to the server

    serializer_class = TrustedCertificateSerializer

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return TrustedCertificateListSerializer if self.action == "list" else TrustedCertificateSerializer

    def get_queryset(self) -> QuerySet[TrustedCertificate]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real caller
            return TrustedCertificate.objects.none()
        if not can(self.request.user, "manage_credentials"):
            raise Forbidden("Only Management Portal administrators may see trusted certificates.")
        return TrustedCertificate.objects.all()

    @extend_schema(request=TrustRequestSerializer, responses={201: TrustedCertificateSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Trust (pin) a certificate for an address."""
        serializer = TrustRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        actor = Actor.from_request(request)
        project = _project(request, data.get("project"))
        if data.get("url"):
            address, pem = _presented(actor, data["url"], data.get("sha256"), project)
        elif data.get("address") and data.get("pem"):
            address, pem = data["address"], data["pem"]
        else:
            raise Invalid("Give either url, or address and pem.", {"url": ["Give either url, or address and pem."]})
        pinned = trust.trust(actor, address, pem, project)
        return Response(TrustedCertificateSerializer(pinned).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Untrust: remove the pin; connections to its address stop trusting the certificate."""
        trust.untrust(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=FetchRequestSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def fetch(self, request: Request) -> Response:
        """The certificate a server presents (subject, issuer, validity, thumbprints, PEM), without trusting it."""
        if not can(request.user, "view_project_users"):
            raise Forbidden("Only administrators may fetch server certificates.")
        serializer = FetchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        server = parse_url(serializer.validated_data["url"], schemes=None)
        return Response(trust.certificate_details(server.address, trust.fetch_certificate(server.host, server.port)))

    @extend_schema(request=FetchRequestSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def check(self, request: Request) -> Response:
        """Connect to the URL with verified TLS: 204 when trusted, else 409 with the certificate (or 502)."""
        if not can(request.user, "view_project_users"):
            raise Forbidden("Only administrators may check server certificates.")
        serializer = FetchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trust.check_tls(serializer.validated_data["url"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _project(request: Request, name: str | None) -> Any:
    """The named project the caller may see, or None; NotFound for one they may not see."""
    if not name:
        return None
    project = visible_projects(request.user).filter(name=name).first()
    if project is None:
        raise NotFound(f"project '{name}' not found")
    return project


def _presented(actor: Actor, url: str, sha256: str | None, project: Any) -> tuple[str, str]:
    """The address and certificate the server at the URL presents, checked against an expected thumbprint."""
    if project is None:
        require(actor, "manage_credentials")
    else:
        require(actor, "manage_registries", project)
    server = parse_url(url, schemes=None)
    address = server.address
    pem = trust.fetch_certificate(server.host, server.port)
    presented = certificate_info(pem).sha256
    if sha256 and sha256.replace(":", "").upper() != presented.replace(":", ""):
        raise Conflict(f"{address} now presents a certificate with SHA-256 {presented}, not the one expected")
    return address, pem
