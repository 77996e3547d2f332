"""`manage.py vulndb`: update the vulnerability database from its feeds, or move it between sites as files.

manage.py vulndb update [SOURCE ...]   fetch the configured feeds that changed (all sources by default)
manage.py vulndb import PATH           load a bundle, a feed file, or a directory of feed files (no network)
manage.py vulndb export PATH           write the whole database as one bundle (zstd JSON lines)
manage.py vulndb status                every feed: last run, last success, what it loaded, its error
"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.core.audit import Actor
from portal.core.errors import DomainError
from scanning import services
from scanning.models import FeedSource

ACTOR = "manage.py vulndb"


class Command(BaseCommand):
    """Update, import, export or show the vulnerability database."""

    help = __doc__

    def add_arguments(self, parser: ArgumentParser) -> None:
        """The four subcommands."""
        commands = parser.add_subparsers(dest="action", required=True)
        update = commands.add_parser("update", help="fetch the feeds that changed")
        update.add_argument("sources", nargs="*", help="debian, ubuntu, alpine, almalinux, pypi, npm, nvd")
        load = commands.add_parser("import", help="load a bundle, a feed file or a directory of feed files")
        load.add_argument("path", type=Path)
        export = commands.add_parser("export", help="write the database as a bundle")
        export.add_argument("path", type=Path)
        commands.add_parser("status", help="show every feed's state")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the chosen subcommand; a domain error is a plain message and exit status 1."""
        actor = Actor.system(ACTOR)
        try:
            if options["action"] == "update":
                self._report(services.update_feeds(actor, options["sources"] or None))
            elif options["action"] == "import":
                self._report(services.import_path(actor, options["path"]))
            elif options["action"] == "export":
                counts = services.export_bundle(actor, options["path"])
                self.stdout.write(f"wrote {counts['vulnerabilities']} advisories of {counts['feeds']} feeds")
            else:
                self._status()
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _report(self, results: list[services.FeedResult]) -> None:
        """One line per feed; exit status 1 when any failed."""
        for result in results:
            if result.error:
                self.stderr.write(f"{result.name}: failed: {result.error}")
            elif result.changed:
                counts = result.counts
                self.stdout.write(
                    f"{result.name}: {counts['vulnerabilities']} advisories, {counts['packages']} packages"
                )
            else:
                self.stdout.write(f"{result.name}: unchanged")
        if any(result.error for result in results):
            raise CommandError("some feeds failed; their previous data is kept")

    def _status(self) -> None:
        """Every feed's last run, last success and counts."""
        for feed in FeedSource.objects.all():
            success = feed.last_success.isoformat() if feed.last_success else "never"
            line = f"{feed.name}: last success {success}, {feed.loaded.get('vulnerabilities', 0)} advisories"
            self.stdout.write(line + (f", error: {feed.error}" if feed.error else ""))
