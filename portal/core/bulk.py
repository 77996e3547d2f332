"""Bulk actions: one service call per item, each in its own transaction with its own audit entry.

A refusal of one item (a domain error) does not stop the others; every item's outcome is returned so the page or
the API can say which were done and why the others were not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from portal.core.errors import DomainError

Item = TypeVar("Item")


@dataclass(frozen=True)
class Outcome:
    """What became of one item of a bulk action: done, or refused with the service's reason."""

    name: str
    error: str | None = None
    # The HTTP status of the refusal (as the API would answer it), for a page that shows a lone refusal.
    status: int = 200

    @property
    def done(self) -> bool:
        """Whether the action was done on the item."""
        return self.error is None


def apply_each(items: Iterable[Item], name: Callable[[Item], str], action: Callable[[Item], object]) -> list[Outcome]:
    """Call the service action on each item in turn; a domain error becomes that item's outcome."""
    outcomes = []
    for item in items:
        try:
            action(item)
        except DomainError as exc:
            outcomes.append(Outcome(name(item), exc.message, exc.status))
        else:
            outcomes.append(Outcome(name(item)))
    return outcomes
