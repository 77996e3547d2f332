"""The one trust dialog, for every page that connects out (hosts, registries, certificates, and next
replication endpoints): verify -> untrusted certificate -> thumbprints -> Trust -> retry.

A view that connects out catches `UntrustedCertificate`, answers `trust_dialog()` with the
certificate's details and the form to retry as hidden fields; Trust posts back to the same view,
which calls `pin_from_post()` and then retries what it was doing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from portal.core import trust
from portal.core.audit import Actor
from portal.core.models import TrustedCertificate
from portal.core.ui import dialog


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
