"""The one run policy: whether an image of a project may be pulled or run, with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from projects.models import Project


@dataclass(frozen=True)
class Verdict:
    """The policy's answer: allowed or not, and why not."""

    allowed: bool
    reason: str = ""


ALLOWED = Verdict(True)
NOT_SCANNED = Verdict(False, "image not scanned yet")
NOT_SIGNED = Verdict(False, "image not signed")

# The registries app plugs in its answer for content trust when Django starts (RegistriesConfig.ready): whether
# notary holds a verified signature for the tag with the manifest digest (resolved from the registry when not
# given), or for the digest reference. Until then a project with content trust runs no image.
SignatureCheck = Callable[[Project, str, str, str], Verdict]
signature_check: SignatureCheck | None = None

# The scanning app plugs in its answer for "Prevent vulnerable images from running" when Django starts
# (ScanningConfig.ready): the verdict on an integrated image under the project's threshold and CVE allowlists.
# Until then, or without the scanning app, such a project runs no image: none has been scanned.
VulnerabilityCheck = Callable[[Project, str, str], Verdict]
vulnerability_check: VulnerabilityCheck | None = None


def install_vulnerability_check(check: VulnerabilityCheck) -> None:
    """Plug in the scanning app's verdict (once, at start-up)."""
    global vulnerability_check
    vulnerability_check = check


def install_signature_check(check: SignatureCheck) -> None:
    """Plug in the registries app's content-trust verdict (once, at start-up)."""
    global signature_check
    signature_check = check


def check(project: Project, repository: str, reference: str, *, integrated: bool = True, digest: str = "") -> Verdict:
    """Whether `repository:reference` (a tag or digest) may be pulled from, or run in, the project.

    `integrated` is False for an image of an external registry: signatures and scans exist only for the
    integrated registry's images (its notary, its scanner), so a project with content trust runs none of them.
    `digest` is the manifest digest the tag names right now, when the caller knows it (the /v2/ proxy reads it from
    the registry's answer); signatures are notary's answer through the registries app, vulnerabilities the
    scanning app's.
    """
    if not integrated:
        if project.content_trust:
            return Verdict(False, f"image not signed (project '{project.name}' runs only signed images)")
        return ALLOWED
    if project.content_trust:
        verdict = signature_check(project, repository, reference, digest) if signature_check else NOT_SIGNED
        if not verdict.allowed:
            return verdict
    if project.prevent_vulnerable:
        return vulnerability_check(project, repository, reference) if vulnerability_check else NOT_SCANNED
    return ALLOWED
