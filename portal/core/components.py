"""The health of the portal's parts (web, worker, beat, registry, notary) as the launcher that supervises them sees it.

`manage.py run` keeps one small JSON file in the data directory up to date: whenever a part changes state
and every few seconds besides, so a reader can tell a live launcher from one that is gone. The web process
reads it for `GET /api/v1/systeminfo`, the UI banner and the reason `/v2/` gives while the registry is down.
Without a launcher (docker compose runs each part as its own service with its own restart policy) there is
no file and no components are reported. A part the launcher left off on purpose (notary without its PostgreSQL) is
reported as "off" with the reason; that is no problem for the banner, only for whoever wants that part.
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
OFF = "off"
STATES = (RUNNING, STARTING, RESTARTING, OFF)
# What a part is when no launcher reports on it: docker compose runs it as its own service.
EXTERNAL = "external"

# The processes of notary (content trust): the signer first, as the launcher starts them.
NOTARY = ("notary-signer", "notary-server")


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
    """The parts that should run but are not running right now (a part left off is not one)."""
    return {name: status for name, status in read().items() if status.state not in (RUNNING, OFF)}


def summary(names: tuple[str, ...], statuses: dict[str, ComponentStatus] | None = None) -> tuple[str, str]:
    """(state, detail) of a part made of several processes: running when all of them run, else the state and
    reason of the first that does not; external when no launcher reports on them (docker compose)."""
    statuses = read() if statuses is None else statuses
    if not statuses:
        return EXTERNAL, "no launcher supervises this portal: docker compose runs it as services of their own"
    found = {name: statuses.get(name) for name in names}
    for name, status in found.items():
        if status is None:
            return OFF, f"the launcher did not start {name}"
        if status.state != RUNNING:
            return status.state, status.detail if status.state == OFF else f"{name} {status.state}: {status.detail}"
    return RUNNING, ", ".join(f"{name} {status.detail}" for name, status in found.items() if status)


def unavailable_reason(name: str) -> str | None:
    """Why a part does not answer, in a sentence for a user, when its launcher knows it is down."""
    status = read().get(name)
    if status is None or status.state == RUNNING:
        return None
    return f"the {name} is {status.state} ({status.detail}); try again in a few seconds"
