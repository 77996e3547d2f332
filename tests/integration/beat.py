"""A real `celery beat` process for the integration tests, reading its schedule from the test database."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.worker import CeleryProcess, spawn


class Beat(CeleryProcess):
    """A running `celery beat` with the DatabaseScheduler (django-celery-beat), as production runs it."""


def start_beat(env: dict[str, str], workdir: Path) -> Beat:
    """Start `python -m celery -A portal beat` on the database schedule, and wait until it is ticking."""
    log_path = workdir / "beat.log"
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "DEBUG",
        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
        # No pid file: it would land in the repository and stop the next run from starting.
        "--pidfile=", "--max-interval", "1",
    ]  # fmt: skip
    beat = Beat(spawn(command, env, log_path), log_path)
    beat.wait_until_logged("beat: Starting...", "celery beat")
    return beat
