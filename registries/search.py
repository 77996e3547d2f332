"""Image search for a project across every registry available to it, concurrently, within one deadline.

The integrated registry answers from the database (the repositories the user may pull); every enabled
global registry and the project's own registries are asked at the same time. A registry that fails or
has not answered when the deadline passes is named in `partial`; the others' results still come back,
merged and sorted by relevance (exact, then prefix, then substring match, then name).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Q

from portal.core.errors import DomainError, NotFound
from projects.models import Project
from registries.external import SEARCH_LIMIT, ExternalRegistryClient, relevance
from registries.external_services import INTEGRATED, client_for
from registries.models import ExternalRegistry, Repository

logger = logging.getLogger(__name__)
# Threads asking registries at once, per search.
MAX_WORKERS = 16


@dataclass
class SearchOutcome:
    """Merged results, each with its registry, and the registries that did not answer in time or failed."""

    results: list[dict[str, Any]] = field(default_factory=list)
    partial: list[dict[str, str]] = field(default_factory=list)


def available_registries(project: Project) -> list[ExternalRegistry]:
    """The enabled global registries and the project's enabled registries, with their credentials."""
    return list(ExternalRegistry.objects.available_to(project).select_related("credential", "project"))


def integrated_results(user: Any, query: str) -> list[dict[str, Any]]:
    """Repositories of the integrated registry the user may pull whose name holds the query (no network)."""
    repositories = Repository.objects.restrict(user).filter(name__icontains=query.strip())
    names = repositories.order_by("name").values_list("name", flat=True)[: SEARCH_LIMIT * 5]
    ranked = sorted(names, key=lambda name: relevance(name, query))[:SEARCH_LIMIT]
    return [{"registry": INTEGRATED, "repository": name, "global": True} for name in ranked]


def search(user: Any, project: Project, query: str, deadline: float | None = None) -> SearchOutcome:
    """Search every registry available to the project; never waits longer than the deadline."""
    deadline = settings.SEARCH_DEADLINE_SECONDS if deadline is None else deadline
    started = time.monotonic()
    outcome = SearchOutcome(results=integrated_results(user, query))
    clients: dict[str, tuple[ExternalRegistry, ExternalRegistryClient]] = {}
    for registry in available_registries(project):
        try:
            clients[registry.name] = (registry, client_for(registry, timeout=deadline))
        except DomainError as exc:
            outcome.partial.append({"registry": registry.name, "error": exc.message})
    if clients:
        _ask_concurrently(clients, query, outcome, max(0.0, deadline - (time.monotonic() - started)))
    outcome.results.sort(key=lambda item: (*relevance(item["repository"], query), item["registry"]))
    outcome.partial.sort(key=lambda item: item["registry"])
    return outcome


def _ask_concurrently(
    clients: dict[str, tuple[ExternalRegistry, ExternalRegistryClient]],
    query: str,
    outcome: SearchOutcome,
    remaining: float,
) -> None:
    """Run each registry's search in a thread; collect what finished before the time ran out."""
    executor = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(clients)), thread_name_prefix="wharf-search")
    futures: dict[Future, ExternalRegistry] = {
        executor.submit(_search_one, client, query): registry for registry, client in clients.values()
    }
    done, pending = wait(futures, timeout=remaining)
    # Threads still waiting on a slow registry end on their own read timeout; nobody waits for them.
    executor.shutdown(wait=False, cancel_futures=True)
    for future in pending:
        registry = futures[future]
        outcome.partial.append({"registry": registry.name, "error": f"no answer within {remaining:.1f} s"})
    for future in done:
        registry = futures[future]
        try:
            found = future.result()
        except DomainError as exc:
            outcome.partial.append({"registry": registry.name, "error": exc.message})
            continue
        except Exception as exc:  # a registry's odd answer must not sink everyone else's results
            logger.warning("search of registry %s failed: %s", registry.name, type(exc).__name__)
            outcome.partial.append({"registry": registry.name, "error": "the registry's answer could not be read"})
            continue
        outcome.results.extend({"registry": registry.name, "global": registry.is_global, **item} for item in found)


def _search_one(client: ExternalRegistryClient, query: str) -> list[dict[str, Any]]:
    """One registry's search in a worker thread; a database connection it opened (a token realm's pinned
    certificates) is closed with it, so threads never leave connections behind."""
    try:
        return client.search(query)
    finally:
        connections.close_all()


def find_registry(project: Project, name: str) -> ExternalRegistry:
    """An enabled registry available to the project by name; NotFound otherwise."""
    registry = (
        ExternalRegistry.objects.available_to(project)
        .filter(Q(project=project) | Q(project__isnull=True), name=name)
        .select_related("credential", "project")
        .order_by("project")  # the project's own first, should a name ever repeat
        .first()
    )
    if registry is None:
        raise NotFound(f"no registry '{name}' is available to project '{project.name}'")
    return registry


def tags(user: Any, project: Project, registry_name: str, repository: str) -> list[str]:
    """The tags of one repository of a registry available to the project (namespace enforced)."""
    if registry_name == INTEGRATED:
        row = Repository.objects.restrict(user).filter(name=repository).first()
        if row is None:
            raise NotFound(f"no repository '{repository}' in the integrated registry")
        return sorted(row.tags.values_list("name", flat=True))
    return client_for(find_registry(project, registry_name)).tags(repository)
