"""What uses a row the core keeps (a credential, a pinned certificate), asked of the apps that use them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# An app's hook: for each of the rows it uses, by pk, a phrase naming what uses it ("registry 'hub-mirror'").
UsageHook = Callable[[Sequence[Any]], dict[int, str]]


def usages_by_pk(rows: Sequence[Any], hooks: Sequence[UsageHook]) -> dict[int, list[str]]:
    """Every row's phrases by pk, one call (one query) per hook for the whole list; [] for a row nothing uses."""
    usages: dict[int, list[str]] = {row.pk: [] for row in rows}
    if not rows:
        return usages
    for hook in hooks:
        for pk, phrase in hook(rows).items():
            if phrase and pk in usages:
                usages[pk].append(phrase)
    return usages
