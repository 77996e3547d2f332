"""REST API of credentials and trusted (pinned) server certificates.

Secrets are write-only: `password` and `private_key` are accepted, never returned.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal import credentials, trust
from portal.addresses import parse_url
from portal.audit import Actor
from portal.credentials import certificate_info, credential_usages, may_pick_credentials
from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.models import Credential, CredentialKind, TrustedCertificate
from portal.services import require
from projects.models import Project
from projects.roles import can

SECRET = {"write_only": True, "required": False, "allow_blank": True, "trim_whitespace": False}


class CredentialSerializer(serializers.ModelSerializer):
    """A credential as portal admins see it: everything but the secret, which is write-only."""

    password = serializers.CharField(style={"input_type": "password"}, **SECRET)
    private_key = serializers.CharField(style={"base_template": "textarea.html"}, **SECRET)
    certificate = serializers.CharField(source="certificate_pem", required=False, allow_blank=True)
    certificate_subject = serializers.SerializerMethodField()
    certificate_not_after = serializers.SerializerMethodField()
    used_by = serializers.SerializerMethodField()

    class Meta:
        model = Credential
        fields = [
            "id", "name", "kind", "username", "password", "certificate", "private_key", "certificate_subject",
            "certificate_not_after", "used_by", "created", "updated", "created_by",
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


class CredentialChoiceSerializer(serializers.ModelSerializer):
    """A credential as project admins see it, to pick one: its name and kind only."""

    class Meta:
        model = Credential
        fields = ["id", "name", "kind"]


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
        if not may_pick_credentials(self.request.user):
            raise Forbidden("Only administrators may see credentials.")
        return Credential.objects.all()

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if not getattr(self, "swagger_fake_view", False) and not can(self.request.user, "manage_credentials"):
            return CredentialChoiceSerializer
        return CredentialListSerializer if self.action == "list" else CredentialSerializer

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        if not can(request.user, "manage_credentials"):
            raise Forbidden("Only Management Portal administrators may manage credentials.")
        serializer = CredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = _secret_fields(serializer.validated_data)
        kind = data.pop("kind", "")
        if not kind:
            raise Invalid("A kind is required.", {"kind": [f"Choose one of {', '.join(CredentialKind.values)}."]})
        credential = credentials.create_credential(Actor.from_request(request), data.pop("name"), kind, **data)
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        credential = self.get_object()
        serializer = CredentialSerializer(credential, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = _secret_fields(serializer.validated_data)
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
        return certificate.usages


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


class CertificateViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Trusted server certificates: portal admins list and untrust them; POST trusts one."""

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
        if not may_pick_credentials(request.user):
            raise Forbidden("Only administrators may fetch server certificates.")
        serializer = FetchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        server = parse_url(serializer.validated_data["url"], schemes=None)
        return Response(trust.certificate_details(server.address, trust.fetch_certificate(server.host, server.port)))

    @extend_schema(request=FetchRequestSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def check(self, request: Request) -> Response:
        """Connect to the URL with verified TLS: 204 when trusted, else 409 with the certificate (or 502)."""
        if not may_pick_credentials(request.user):
            raise Forbidden("Only administrators may check server certificates.")
        serializer = FetchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trust.check_tls(serializer.validated_data["url"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _project(request: Request, name: str | None) -> Project | None:
    """The named project the caller may see, or None; NotFound for one they may not see."""
    if not name:
        return None
    project = Project.objects.restrict(request.user, "view").filter(name=name).first()
    if project is None:
        raise NotFound(f"project '{name}' not found")
    return project


def _presented(actor: Actor, url: str, sha256: str | None, project: Project | None) -> tuple[str, str]:
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
