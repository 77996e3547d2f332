"""The one run policy: whether an image of a project may be pulled or run, with a reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

from projects.models import Project


@dataclass(frozen=True)
class Verdict:
    """The policy's answer: allowed or not, and why not."""

    allowed: bool
    reason: str = ""


ALLOWED = Verdict(True)


def check(project: Project, repository: str, reference: str, *, integrated: bool = True) -> Verdict:
    """Whether `repository:reference` (a tag or digest) may be pulled from, or run in, the project.

    `integrated` is False for an image of an external registry: signatures exist only for the
    integrated registry's images (its notary), so a project with content trust runs none of them.
    Signatures and scan results do not exist yet (the content-trust and scanning issues add them),
    so a project that asks for either refuses every image of the integrated registry until they do.
    """
    if not integrated:
        if project.content_trust:
            return Verdict(False, f"image not signed (project '{project.name}' runs only signed images)")
        return ALLOWED
    if project.content_trust:
        return Verdict(False, "image not signed")
    if project.prevent_vulnerable:
        return Verdict(False, "image not scanned yet")
    return ALLOWED
