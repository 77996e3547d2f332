"""Registry garbage collection: distribution's `garbage-collect --delete-untagged` while the registry is read-only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from django.conf import settings

from portal.core.errors import RemoteUnreachable
from portal.core.jobs import JobContext
from portal.core.models import Job
from registries import maintenance
from registries.client import INDEX_TYPES
from registries.models import Tag

# Hours: a registry with a lot of content takes a while to mark and sweep.
TIMEOUT_SECONDS = 6 * 3600
_ELIGIBLE_BLOB = re.compile(r"blob eligible for deletion: (\S+)")
_DELETING_BLOB = re.compile(r"Deleting blob: (\S+)")
_ELIGIBLE_MANIFEST = re.compile(r"manifest eligible for deletion")


def storage_directory(config_path: Path) -> Path:
    """Where the registry keeps its blobs: the filesystem root of its config, else the storage setting."""
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
        return Path(config["storage"]["filesystem"]["rootdirectory"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return Path(settings.REGISTRY_STORAGE_DIR)


def directory_size(path: Path) -> int:
    """Bytes of every file under the path."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())


def garbage_collect(job: Job, log: JobContext) -> str:
    """Run distribution's garbage collector with the registry read-only; returns freed bytes and blobs deleted."""
    binary = shutil.which(settings.REGISTRY_BINARY)
    if binary is None:
        raise RemoteUnreachable(f"the registry binary '{settings.REGISTRY_BINARY}' is not installed", transient=False)
    config_path = Path(settings.REGISTRY_CONFIG_PATH)
    if not config_path.is_file():
        raise RemoteUnreachable(f"the registry configuration {config_path} does not exist", transient=False)
    storage = storage_directory(config_path)
    before = directory_size(storage)
    maintenance.enter_read_only("registry is read-only for maintenance (garbage collection)")
    try:
        log(f"registry read-only: {maintenance.read_only_reason()}")
        log(f"storage {storage}: {before} bytes before")
        output = _run([binary, "garbage-collect", *_untagged_flag(log), str(config_path)])
    finally:
        maintenance.leave_read_only()
        log("registry accepts writes again")
    after = directory_size(storage)
    return _summary(output, before, after, log)


def _untagged_flag(log: JobContext) -> list[str]:
    """`--delete-untagged`, unless a multi-arch image exists: distribution 2.8 would delete its platform manifests."""
    # distribution/distribution#3178: --delete-untagged removes the untagged manifests an index refers
    # to, breaking every multi-arch image. Without it, deleted manifests' blobs are still freed.
    if Tag.objects.filter(media_type__in=INDEX_TYPES).exists():
        log("multi-arch images present: keeping untagged manifests this run (distribution#3178)")
        return []
    return ["--delete-untagged"]


def _run(command: list[str]) -> str:
    """Run the collector and return its output; a non-zero exit is an error carrying the output's end."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RemoteUnreachable(f"garbage collection did not finish in {TIMEOUT_SECONDS} s", transient=False) from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RemoteUnreachable(f"garbage-collect exited with {done.returncode}: {output[-1000:]}", transient=False)
    return output


def _summary(output: str, before: int, after: int, log: JobContext) -> str:
    """Log what the collector deleted and say how much it freed."""
    eligible = set(_ELIGIBLE_BLOB.findall(output))
    deleted = set(_DELETING_BLOB.findall(output))
    manifests = len(_ELIGIBLE_MANIFEST.findall(output))
    for line in output.splitlines():
        if _DELETING_BLOB.search(line) or _ELIGIBLE_MANIFEST.search(line):
            log(line.strip())
    freed = max(before - after, 0)
    return (
        f"freed {freed} bytes: {len(deleted) or len(eligible)} blobs deleted, {manifests} untagged manifests; "
        f"storage {before} -> {after} bytes"
    )
