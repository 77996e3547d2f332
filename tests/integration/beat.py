"""A real `celery beat` process for the integration tests, reading its schedule from the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.worker import BASE_DIR, START_TIMEOUT, CeleryProcess


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
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    beat = Beat(process, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while "beat: Starting..." not in beat.log():
        if process.poll() is not None:
            pytest.fail(f"celery beat exited with {process.returncode}:\n{beat.log()[-3000:]}")
        if time.monotonic() > deadline:
            beat.stop()
            pytest.fail(f"celery beat did not start within {START_TIMEOUT:.0f} s:\n{beat.log()[-3000:]}")
        time.sleep(0.2)
    return beat
