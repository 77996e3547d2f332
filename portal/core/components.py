"""The health of the portal's parts (web, worker, beat, registry) as the launcher that supervises them sees it.

`manage.py run` keeps one small JSON file in the data directory up to date: whenever a part changes state
and every few seconds besides, so a reader can tell a live launcher from one that is gone. The web process
reads it for `GET /api/v1/systeminfo`, the UI banner and the reason `/v2/` gives while the registry is down.
Without a launcher (docker compose runs each part as its own service with its own restart policy) there is
no file and no components are reported.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

# How often the launcher rewrites the file even when nothing changed, and when a reader stops believing it.
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS

RUNNING = "running"
STARTING = "starting"
RESTARTING = "restarting"
STATES = (RUNNING, STARTING, RESTARTING)


@dataclass(frozen=True)
class ComponentStatus:
    """One part of the portal: its state, since when (RFC 3339), how often it was restarted, and why."""

    state: str
    since: str
    restarts: int
    detail: str


def status_path() -> Path:
    """The file the launcher writes and the web process reads."""
    return Path(settings.DATA_DIR) / "components.json"


def write(components: dict[str, ComponentStatus], path: Path | None = None) -> None:
    """Replace the file atomically, so a reader never sees half of it."""
    path = path or status_path()
    document = {"updated": time.time(), "components": {name: asdict(status) for name, status in components.items()}}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(document))
    temporary.chmod(0o600)
    os.replace(temporary, path)


def remove(path: Path | None = None) -> None:
    """Forget the file when the launcher stops: nothing supervises the parts any more."""
    (path or status_path()).unlink(missing_ok=True)


def read(path: Path | None = None) -> dict[str, ComponentStatus]:
    """Every part's status, or nothing when no live launcher keeps the file (none, stopped, or killed)."""
    try:
        document = json.loads((path or status_path()).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or time.time() - float(document.get("updated", 0)) > STALE_AFTER_SECONDS:
        return {}
    return {name: ComponentStatus(**fields) for name, fields in (document.get("components") or {}).items()}


def problems() -> dict[str, ComponentStatus]:
    """The parts that are not running right now."""
    return {name: status for name, status in read().items() if status.state != RUNNING}


def unavailable_reason(name: str) -> str | None:
    """Why a part does not answer, in a sentence for a user, when its launcher knows it is down."""
    status = read().get(name)
    if status is None or status.state == RUNNING:
        return None
    return f"the {name} is {status.state} ({status.detail}); try again in a few seconds"
