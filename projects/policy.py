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


def check(project: Project, repository: str, reference: str) -> Verdict:
    """Whether `repository:reference` (a tag or digest) of the project may be pulled or run.

    Signatures and scan results do not exist yet (the content-trust and scanning issues add them),
    so a project that asks for either refuses every image until they do.
    """
    if project.content_trust:
        return Verdict(False, "image not signed")
    if project.prevent_vulnerable:
        return Verdict(False, "image not scanned yet")
    return ALLOWED
