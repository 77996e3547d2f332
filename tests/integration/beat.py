"""A real `celery beat` process for the integration tests, reading its schedule from the test database."""

from __future__ import annotations

import datetime
import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone

from tests.integration.worker import CeleryProcess, spawn

# Debian's libfaketime (package libfaketime), the variant for threaded programs.
LIBFAKETIME = "/usr/lib/*/faketime/libfaketimeMT.so.1"


@dataclass
class Beat(CeleryProcess):
    """A running `celery beat` with the DatabaseScheduler (django-celery-beat), as production runs it.

    `ahead` is how many seconds its wall clock runs ahead of the real one (0 unless the test set it).
    """

    ahead: int = 0

    def clock(self, moment: datetime.datetime | None = None) -> datetime.datetime:
        """What the beat's clock reads (now, or when the real clock read `moment`), in the portal's time zone."""
        return timezone.localtime(moment or timezone.now()) + datetime.timedelta(seconds=self.ahead)

    def date_schedule_change(self) -> None:
        """Date the schedule's last change (django-celery-beat's PeriodicTasks row) on the beat's clock.

        The beat reloads its schedule when that date moves past the last one it read, and each process writes it
        on its own clock: the beat did so when it started, on its clock ahead, so a change made here just after
        would bear an earlier date and go unseen for minutes. With one clock, as in production, nothing changes.
        """
        from django_celery_beat.models import PeriodicTasks

        if self.ahead:
            PeriodicTasks.objects.update(last_update=self.clock())


def clock_ahead(minute_in: int) -> int:
    """Seconds to set a clock ahead so that its next minute starts `minute_in` seconds from now."""
    now = timezone.now()
    return round(60 - now.second - now.microsecond / 1e6 - minute_in) % 60


def start_beat(env: dict[str, str], workdir: Path, ahead: int = 0) -> Beat:
    """Start `python -m celery -A portal beat` on the database schedule, and wait until it is ticking.

    Crontab entries fire at minute boundaries. With `ahead`, the beat's clock runs that many seconds ahead of the
    real one (libfaketime; every other process keeps the real clock): with `clock_ahead`, a test checking that a
    crontab entry fires at its minute waits seconds for that minute, not up to a minute.
    """
    log_path = workdir / "beat.log"
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "DEBUG",
        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
        # No pid file: it would land in the repository and stop the next run from starting.
        "--pidfile=", "--max-interval", "1",
    ]  # fmt: skip
    if ahead:
        env = {**env, **_clock_ahead_environment(ahead)}
    beat = Beat(spawn(command, env, log_path), log_path, ahead)
    # Not "beat: Starting...": its first tick comes after, and takes the schedule's latest change as the one it
    # has seen (django-celery-beat), so a change a test makes before that tick goes unseen for minutes.
    beat.wait_until_logged("beat: Waking up", "celery beat")
    return beat


def _clock_ahead_environment(seconds: int) -> dict[str, str]:
    """The environment that sets a process's clocks `seconds` ahead (its monotonic clock too: libfaketime 0.9.10
    breaks Python's sleep when only the wall clock moves)."""
    found = sorted(glob.glob(LIBFAKETIME))
    if not found:
        pytest.fail(f"libfaketime is missing ({LIBFAKETIME}): install Debian's libfaketime package")
    return {"LD_PRELOAD": found[0], "FAKETIME": f"+{seconds}s"}
