"""The registry's read-only maintenance mode, shared by every web and worker process through the data directory."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def _flag() -> Path:
    return Path(settings.DATA_DIR) / "registry-read-only"


def read_only_reason() -> str | None:
    """Why the registry refuses writes right now, or None when it accepts them."""
    try:
        return _flag().read_text().strip() or "registry is read-only for maintenance"
    except FileNotFoundError:
        return None


def enter_read_only(reason: str = "registry is read-only for maintenance") -> None:
    """Refuse pushes and deletes until leave_read_only() (pulls continue)."""
    _flag().write_text(reason)


def leave_read_only() -> None:
    """Accept writes again."""
    _flag().unlink(missing_ok=True)
