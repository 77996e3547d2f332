"""What the integrated registry's pushes and deletes start: the immediate rules of their project."""

from __future__ import annotations

import logging

from portal.core.errors import DomainError
from projects.models import Project
from registries.models import Tag
from replication import services

logger = logging.getLogger(__name__)


def on_push(tag: Tag) -> None:
    """A tag was pushed (or moved): copy it to the endpoints of the immediate rules that take it."""
    repository = tag.repository
    try:
        services.replicate_push(repository.project, repository.name, tag.name)
    except DomainError:
        logger.exception("immediate replication of %s:%s could not start", repository.name, tag.name)


def on_delete(project: Project, repository: str, tags: list[str]) -> None:
    """Tags were deleted: delete them on the endpoints of the immediate rules that replicate deletions."""
    try:
        services.replicate_deletion(project, repository, tags)
    except DomainError:
        logger.exception("immediate replication of the deletion of %s:%s could not start", repository, tags)
