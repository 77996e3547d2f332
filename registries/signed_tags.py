"""The signature state of a repository's tags as the tags table and the API show it.

A repository's trust data is read and verified once per page or response (`content_trust.signatures`), never once
per tag: with the data cached by checksum that costs one small request to notary, however many tags are shown.
Nothing here decides whether an image may run; that is `projects.policy.check`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from projects.models import Project
from registries import content_trust
from registries.models import Repository, Tag
from registries.tuf import SignedTarget


@dataclass(frozen=True)
class TagState:
    """One current tag of the repository: its digest and whether a verified signature names it."""

    name: str
    digest: str
    signature: content_trust.Signature


@dataclass(frozen=True)
class Report:
    """A repository's signed targets as verified, each current tag's state, and why no trust data was read."""

    repository: str
    content_trust: bool
    problem: str
    targets: list[SignedTarget]
    tags: list[TagState]


def shown_for(project: Project) -> bool:
    """Whether the tags table has a Signed column: when the portal has a notary (a project without content trust
    still shows which tags are signed, as Harbor does) or the project enforces content trust (then every tag is
    unsigned for want of a notary, and the column says why pulls are refused)."""
    return project.content_trust or content_trust.is_configured()


def read(repository: Repository) -> content_trust.Signatures:
    """The repository's verified signatures: one read of its trust data."""
    return content_trust.signatures(repository.name)


def attach(repository: Repository, tags: Iterable[Tag]) -> content_trust.Signatures:
    """Set `tag.signature` on each tag from one read of the repository's trust data."""
    found = read(repository)
    for tag in tags:
        tag.signature = found.of(tag.name, tag.digest)
    return found


def report(repository: Repository) -> Report:
    """What `/signatures` answers: the verified targets by tag name and every current tag's state."""
    found = read(repository)
    tags = [
        TagState(name, digest, found.of(name, digest))
        for name, digest in repository.tags.order_by("name").values_list("name", "digest")
    ]
    return Report(
        repository=repository.name,
        content_trust=repository.project.content_trust,
        problem=found.problem,
        targets=sorted(found.targets.values(), key=lambda target: target.name),
        tags=tags,
    )
