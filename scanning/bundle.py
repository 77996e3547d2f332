"""The vulndb bundle: the whole vulnerability database in one file, for sites without internet.

A zstd-compressed stream of JSON lines: a header {"format": "wharf-vulndb", "version": 1}, then per
feed a {"feed": {"name", "source"}} line followed by one {"advisory": {...}} line per advisory,
its affected packages inside. Lines keep memory flat on both ends whatever the size.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import IO, Any

import zstandard

from portal.core.errors import Invalid
from scanning.models import FeedSource, Vulnerability
from scanning.updaters import Advisory, Affected, timestamp

FORMAT = "wharf-vulndb"
VERSION = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
AFFECTED_FIELDS = [item.name for item in fields(Affected)]
TIMES = ("published", "modified", "withdrawn")


@dataclass
class Feed:
    """A feed as a bundle names it."""

    name: str
    source: str


def is_bundle(stream: IO[bytes]) -> bool:
    """Whether the stream starts like a bundle (zstd); the stream is left where it was."""
    start = stream.tell()
    magic = stream.read(4)
    stream.seek(start)
    return magic == ZSTD_MAGIC


def _advisory_json(vulnerability: Vulnerability) -> dict[str, Any]:
    """One advisory line's content."""
    advisory = {
        "name": vulnerability.name,
        **{key: getattr(vulnerability, key) for key in ("aliases", "summary", "description", "severity")},
        **{key: getattr(vulnerability, key) for key in ("cvss_score", "cvss_vector", "links")},
        **{key: value.isoformat() if (value := getattr(vulnerability, key)) else None for key in TIMES},
    }
    advisory["affected"] = [{key: getattr(row, key) for key in AFFECTED_FIELDS} for row in vulnerability.affected.all()]
    return advisory


def write(stream: IO[bytes], feeds: Iterable[FeedSource]) -> dict[str, int]:
    """Write the feeds' advisories as a bundle; returns how many feeds and advisories it holds."""
    counts = {"feeds": 0, "vulnerabilities": 0}
    compressor = zstandard.ZstdCompressor(level=10)
    with compressor.stream_writer(stream, closefd=False) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        header = {"format": FORMAT, "version": VERSION, "exported": datetime.now().astimezone().isoformat()}
        text.write(json.dumps(header) + "\n")
        for feed in feeds:
            counts["feeds"] += 1
            text.write(json.dumps({"feed": {"name": feed.name, "source": feed.source}}) + "\n")
            rows = Vulnerability.objects.filter(source=feed.name).order_by("name").prefetch_related("affected")
            for vulnerability in rows.iterator(chunk_size=2000):
                counts["vulnerabilities"] += 1
                text.write(json.dumps({"advisory": _advisory_json(vulnerability)}) + "\n")
        text.flush()
        text.detach()
    return counts


def _advisory(data: dict[str, Any]) -> Advisory:
    """An advisory line's content as an Advisory."""
    affected = [Affected(**{key: row[key] for key in AFFECTED_FIELDS if key in row}) for row in data.pop("affected")]
    times = {key: timestamp(data.pop(key, None)) for key in TIMES}
    return Advisory(**data, **times, affected=affected)


def read(stream: IO[bytes]) -> Iterator[tuple[Feed, list[Advisory]]]:
    """Each feed of a bundle with its advisories; Invalid when the file is not a bundle this Wharf reads."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(stream, closefd=False)
        lines = io.TextIOWrapper(reader, encoding="utf-8")
        header = json.loads(lines.readline() or "{}")
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise Invalid(f"not a {FORMAT} bundle of version {VERSION}")
        feed: Feed | None = None
        advisories: list[Advisory] = []
        for line in lines:
            item = json.loads(line)
            if "feed" in item:
                if feed is not None:
                    yield feed, advisories
                feed, advisories = Feed(**item["feed"]), []
            elif "advisory" in item and feed is not None:
                advisories.append(_advisory(item["advisory"]))
            else:
                raise Invalid("vulndb bundle: an advisory line comes before any feed line")
        if feed is not None:
            yield feed, advisories
    except (zstandard.ZstdError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise Invalid(f"the vulndb bundle is damaged: {exc}") from exc
