"""Administration > Identity Management > Credentials and Certificates, and the reusable trust dialog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal import credentials, trust
from portal.addresses import parse_url
from portal.audit import Actor
from portal.credentials import CertificateInfo, certificate_info, credential_usages
from portal.errors import DomainError
from portal.forms import CertificateUrlForm, CredentialForm
from portal.models import Credential, CredentialKind, TrustedCertificate
from portal.ui import act, dialog, finish, form_error, refuse, require_permission, submit
from projects.roles import can

# Credentials.


@login_required
def credential_list(request: HttpRequest) -> HttpResponse:
    """The credentials with their type, user or certificate, and where each is used."""
    require_permission(can(request.user, "manage_credentials"))
    rows = [
        (credential, credential_usages(credential), _certificate_of(credential))
        for credential in Credential.objects.all()
    ]
    return render(request, "portal/credentials.html", {"rows": rows, "tab": "credentials"})


def _certificate_of(credential: Credential) -> CertificateInfo | None:
    """The public certificate's subject and validity, for a certificate credential."""
    return certificate_info(credential.certificate_pem) if credential.certificate_pem else None


def _secret_fields(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The form's fields that belong to the credential's kind."""
    if kind == CredentialKind.PASSWORD:
        return {"username": data["username"], "password": data["password"]}
    return {"certificate": data["certificate"], "private_key": data["private_key"]}


@login_required
def credential_create(request: HttpRequest) -> HttpResponse:
    """The +Credential dialog; the Type radio re-renders it with the fields of that type."""
    require_permission(can(request.user, "manage_credentials"))
    kind = request.POST.get("kind") or request.GET.get("kind") or CredentialKind.PASSWORD
    kind = kind if kind in CredentialKind.values else CredentialKind.PASSWORD
    form = CredentialForm(request.POST or None, initial={"kind": kind, "name": request.GET.get("name", "")})

    def save(data: dict[str, Any]) -> tuple[str, str]:
        actor = Actor.from_request(request)
        credential = credentials.create_credential(actor, data["name"], kind, **_secret_fields(kind, data))
        return f"Credential '{credential.name}' created.", reverse("credentials")

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = {"form": form, "kind": kind, "action": reverse("credential-create"), "cancel_url": reverse("credentials")}
    return dialog(request, "portal/credential_dialog.html", context, status)


@login_required
def credential_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The Edit dialog of a credential: its name and user or certificate; empty secrets stay as they are."""
    require_permission(can(request.user, "manage_credentials"))
    credential = get_object_or_404(Credential, name=name)
    initial = {"name": credential.name, "username": credential.username, "certificate": credential.certificate_pem}
    form = CredentialForm(request.POST or None, initial={**initial, "kind": credential.kind}, editing=True)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        fields = _secret_fields(credential.kind, data)
        credentials.update_credential(Actor.from_request(request), credential, name=data["name"], **fields)
        return f"Credential '{credential.name}' saved.", reverse("credentials")

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = {
        "form": form,
        "kind": credential.kind,
        "subject": credential,
        "action": reverse("credential-edit", args=[credential.name]),
        "cancel_url": reverse("credentials"),
    }
    return dialog(request, "portal/credential_dialog.html", context, status)


@require_POST
@login_required
def credential_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete a credential; refused with the message naming what uses it."""
    credential = get_object_or_404(Credential, name=name)
    message = f"Credential '{name}' deleted."
    return act(
        request, lambda actor: credentials.delete_credential(actor, credential) or message, reverse("credentials")
    )


# Certificates.


@login_required
def certificate_list(request: HttpRequest) -> HttpResponse:
    """The trusted (pinned) server certificates with their details and where each is used."""
    require_permission(can(request.user, "manage_credentials"))
    return render(
        request, "portal/certificates.html", {"certificates": TrustedCertificate.objects.all(), "tab": "certificates"}
    )


@login_required
def certificate_add(request: HttpRequest) -> HttpResponse:
    """+Certificate: fetch what a server presents and show it in the trust dialog."""
    require_permission(can(request.user, "manage_credentials"))
    form = CertificateUrlForm(request.POST or None)
    status = 400 if form.is_bound else 200
    if form.is_valid():
        try:
            server = parse_url(form.cleaned_data["url"], schemes=None)
            details = trust.certificate_details(server.address, trust.fetch_certificate(server.host, server.port))
        except DomainError as exc:
            form_error(form, exc)
            status = exc.status
        else:
            return trust_dialog(
                request,
                details,
                action=reverse("certificate-trust"),
                cancel_url=reverse("certificates"),
                message=f"{server.address} presents this certificate. Compare its thumbprints with the ones its "
                "administrator gave you before you trust it.",
                status=200,
            )
    context = {"form": form, "action": reverse("certificate-add"), "cancel_url": reverse("certificates")}
    return dialog(request, "portal/certificate_add_dialog.html", context, status)


@require_POST
@login_required
def certificate_trust(request: HttpRequest) -> HttpResponse:
    """The trust dialog's default target: pin the posted certificate and go to `next` (or the list)."""
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("certificates")
    try:
        pinned = pin_from_post(request)
    except DomainError as exc:
        return refuse(request, exc, next_url)
    if pinned is not None:
        messages.success(request, f"The certificate of {pinned.address} is trusted.")
    return finish(request, next_url)


@require_POST
@login_required
def certificate_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Untrust: remove the pinned certificate."""
    certificate = get_object_or_404(TrustedCertificate, pk=pk)
    address = certificate.address
    try:
        trust.untrust(Actor.from_request(request), certificate)
    except DomainError as exc:
        return refuse(request, exc, reverse("certificates"))
    messages.success(request, f"The certificate of {address} is no longer trusted.")
    return finish(request, reverse("certificates"))


# The trust dialog, for every page that connects out.


def trust_dialog(
    request: HttpRequest,
    certificate: dict[str, Any],
    action: str,
    cancel_url: str,
    hidden: dict[str, str] | None = None,
    message: str = "",
    status: int = 409,
) -> HttpResponse:
    """The "trust this certificate?" dialog for an UntrustedCertificate's `certificate` details.

    Trust posts `trust_address` and `trust_pem` (plus the `hidden` fields, e.g. the form to retry)
    to `action`, whose view calls pin_from_post() and then retries what it was doing.
    """
    context = {
        "certificate": certificate,
        "action": action,
        "cancel_url": cancel_url,
        "hidden": hidden or {},
        "message": message or f"The certificate of {certificate['address']} is not trusted.",
        "valid_from": _when(certificate.get("not_before")),
        "valid_until": _when(certificate.get("not_after")),
        "size": "lg",
    }
    return dialog(request, "components/trust_dialog.html", context, status)


def _when(value: str | None) -> str:
    """An ISO timestamp of the certificate details as the page shows times."""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC") if value else ""
    except ValueError:
        return value or ""


def pin_from_post(request: HttpRequest, project: Any = None) -> TrustedCertificate | None:
    """Pin the certificate a trust dialog posted (`trust_address`, `trust_pem`); None when it posted none."""
    address, pem = request.POST.get("trust_address", ""), request.POST.get("trust_pem", "")
    if not address or not pem:
        return None
    return trust.trust(Actor.from_request(request), address, pem, project)
