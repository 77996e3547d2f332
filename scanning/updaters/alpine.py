"""Alpine's secdb (https://secdb.alpinelinux.org/v3.19/main.json): one file per branch and repository.

Its shape: {"distroversion": "v3.19", "reponame": "main", "packages": [{"pkg": {"name", "secfixes":
{fixed version: [CVE id, ...]}}}]}. A package is affected below the version that fixed it; a
fixed version of "0" means the branch never shipped the flaw. Secdb gives no severity: NVD does.
"""

from __future__ import annotations

from typing import IO
from urllib.parse import urlsplit

from scanning.models import FixStatus
from scanning.updaters import CVE_ID, Advisory, Affected, FeedFormatError, Updater, iter_dicts, load_json

SECDB_URL = "https://security.alpinelinux.org/vuln/"


class AlpineUpdater(Updater):
    """Alpine's security database, one feed per branch and repository."""

    source = "alpine"
    url_setting = "VULNDB_ALPINE_URLS"

    def feed_name(self, url: str) -> str:
        """alpine-v3.19-main for …/v3.19/main.json."""
        parts = [part for part in urlsplit(url).path.split("/") if part]
        return "-".join(["alpine", *[part.removesuffix(".json") for part in parts[-2:]]])

    def parse(self, stream: IO[bytes]) -> list[Advisory]:
        """Every CVE a branch's secfixes name, with the package versions that fixed it."""
        document = load_json(stream)
        if not isinstance(document, dict) or "packages" not in document:
            raise FeedFormatError("Alpine secdb: expected an object with distroversion and packages")
        branch = str(document.get("distroversion", "")).removeprefix("v")
        if not branch:
            raise FeedFormatError("Alpine secdb: distroversion is missing")
        namespace = f"alpine:{branch}"
        advisories: dict[str, Advisory] = {}
        for entry in iter_dicts(document["packages"], "Alpine secdb packages"):
            package = entry.get("pkg") or {}
            name = package.get("name")
            for fixed, ids in (package.get("secfixes") or {}).items():
                # Entries are "CVE-2023-1234" and sometimes several ids, or an id with a note, in one string.
                for text in ids or []:
                    for vulnerability in str(text).split():
                        if not CVE_ID.match(vulnerability) and not vulnerability.startswith(("GHSA-", "ALPINE-")):
                            continue
                        advisory = advisories.setdefault(
                            vulnerability, Advisory(name=vulnerability, links=[SECDB_URL + vulnerability])
                        )
                        status = FixStatus.NOT_AFFECTED if str(fixed) == "0" else FixStatus.FIXED
                        fixed_version = "" if status == FixStatus.NOT_AFFECTED else str(fixed)
                        advisory.affected.append(Affected(namespace, name, status, fixed_version=fixed_version))
        return list(advisories.values())
