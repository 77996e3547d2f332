"""Updaters: one module per vulnerability source, each reading that source's own file format into Advisory records.

An updater knows where its feeds live (URLs from settings, one feed per URL), what a feed is
called (the FeedSource name, also the file name it has in an air-gapped import directory), and
how to parse one downloaded file. Fetching and storing are shared (fetch.py, scanning.services).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from django.utils.dateparse import parse_datetime

from portal.core.errors import Invalid
from scanning.models import FixStatus, Severity

CVE_ID = re.compile(r"^CVE-\d{4}-\d+$")
# A source whose URL setting is this word is switched off.
OFF = "off"


class FeedFormatError(Invalid):
    """A feed file is not in the format its source publishes."""


@dataclass
class Affected:
    """One package of one namespace an advisory affects, with one range (see scanning.models.AffectedPackage)."""

    namespace: str
    package: str
    status: str = FixStatus.FIXED
    introduced: str = ""
    fixed_version: str = ""
    last_affected: str = ""
    versions: list[str] = field(default_factory=list)
    severity: str = Severity.UNKNOWN


@dataclass
class Advisory:
    """One vulnerability as a feed describes it, with the packages it affects."""

    name: str
    summary: str = ""
    description: str = ""
    severity: str = Severity.UNKNOWN
    cvss_score: float | None = None
    cvss_vector: str = ""
    links: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    published: datetime | None = None
    modified: datetime | None = None
    withdrawn: datetime | None = None
    affected: list[Affected] = field(default_factory=list)

    def merge(self, other: Advisory) -> None:
        """Fold another record about the same vulnerability into this one (two OSV records naming one CVE)."""
        self.affected.extend(other.affected)
        self.aliases = sorted(set(self.aliases) | set(other.aliases) - {self.name})
        self.links = list(dict.fromkeys(self.links + other.links))
        for name in ("summary", "description", "cvss_vector", "published", "modified"):
            if not getattr(self, name):
                setattr(self, name, getattr(other, name))
        if self.cvss_score is None:
            self.cvss_score = other.cvss_score
        if Severity.rank(other.severity) > Severity.rank(self.severity):
            self.severity = other.severity
        # Withdrawn only when every record saying so is withdrawn.
        self.withdrawn = self.withdrawn if other.withdrawn else None


def merged(advisories: Iterable[Advisory]) -> list[Advisory]:
    """The advisories with those of the same name folded into one."""
    by_name: dict[str, Advisory] = {}
    for advisory in advisories:
        if advisory.name in by_name:
            by_name[advisory.name].merge(advisory)
        else:
            by_name[advisory.name] = advisory
    return list(by_name.values())


class Updater:
    """Reads one source's feeds; subclasses set `source`, `url_setting`, and implement parse()."""

    source: ClassVar[str]
    url_setting: ClassVar[str]
    # The suffix of the feed's file in an import directory (e.g. "debian.json", "pypi.zip").
    suffix: ClassVar[str] = ".json"

    def urls(self) -> list[str]:
        """The feed URLs configured for this source (none when switched off)."""
        from django.conf import settings

        value = getattr(settings, self.url_setting)
        urls = value if isinstance(value, list) else [value]
        return [url for url in urls if url and url.strip().lower() != OFF]

    def feed_name(self, url: str) -> str:
        """The FeedSource name of the feed at the URL (sources with one feed use their own name)."""
        return self.source

    def parse(self, stream: IO[bytes]) -> list[Advisory]:
        """Every advisory of one feed file, read from a binary stream."""
        raise NotImplementedError


def registry() -> dict[str, Updater]:
    """Every updater by source name, in the order they run (NVD last: it fills in what the others lack)."""
    from scanning.updaters import almalinux, alpine, debian, npm, nvd, pypi, ubuntu

    updaters: list[Updater] = [
        debian.DebianUpdater(),
        ubuntu.UbuntuUpdater(),
        alpine.AlpineUpdater(),
        almalinux.AlmaLinuxUpdater(),
        pypi.PypiUpdater(),
        npm.NpmUpdater(),
        nvd.NvdUpdater(),
    ]
    return {updater.source: updater for updater in updaters}


def updater_for_file(path: Path) -> Updater | None:
    """The updater whose feed the file is, by its name: `debian.json`, `alpine-v3.19-main.json`, `nvd-2024.json.gz`."""
    return registry().get(feed_file_name(path).split("-", 1)[0])


def feed_file_name(path: Path) -> str:
    """The feed a file holds: its name without the format's extensions (alpine-v3.19-main.json → alpine-v3.19-main)."""
    name = path.name
    for extension in (".gz", ".json", ".zip"):
        name = name.removesuffix(extension)
    return name


def load_json(stream: IO[bytes]) -> Any:
    """The JSON document of a stream, gunzipped first when it is gzip (NVD publishes .json.gz)."""
    data = stream.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise FeedFormatError(f"not a JSON document: {exc}") from exc


def timestamp(text: Any) -> datetime | None:
    """An ISO 8601 time of a feed, or None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = parse_datetime(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # NVD writes its times without a zone; they are UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def iter_dicts(value: Any, what: str) -> Iterator[dict]:
    """The items of a JSON list that must hold objects; FeedFormatError naming `what` otherwise."""
    if not isinstance(value, list):
        raise FeedFormatError(f"{what}: expected a list")
    for item in value:
        if not isinstance(item, dict):
            raise FeedFormatError(f"{what}: expected objects in the list")
        yield item
