"""What the benchmarks share."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def migrated_portal(prefix: str) -> Iterator[Path]:
    """Django set up in this process on a fresh SQLite portal, migrated, in a temporary data directory."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ.update(WHARF_DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="portal.settings")
        os.environ.pop("WHARF_DATABASE_URL", None)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield Path(tmp)
