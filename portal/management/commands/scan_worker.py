"""`manage.py scan_worker`: the Celery worker of scan jobs alone (compose's scanner service; the launcher runs the
same command as its scanner child)."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.launcher import scan_worker_command


class Command(BaseCommand):
    help = "Run the Celery worker that takes scan jobs (the scans queue beside WHARF_TASK_QUEUE)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=1, help="scans run at the same time (1)")

    def handle(self, *args: Any, **options: Any) -> None:
        command = scan_worker_command(sys.executable, options["concurrency"])
        os.execv(command[0], command)
