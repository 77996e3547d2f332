"""NVD's CVE data in its JSON 2.0 feeds (https://nvd.nist.gov/feeds/json/cve/2.0/nvdcve-2.0-2024.json.gz).

Its shape is the CVE API 2.0 answer: {"format": "NVD_CVE", "vulnerabilities": [{"cve": {"id",
"descriptions", "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {"vectorString"}}]},
"references", "published", "lastModified", "vulnStatus"}}]}. NVD names no packages: its records
give the description and CVSS score the matcher falls back on when a distribution gives none
(Alpine never does). Rejected CVEs are withdrawn.
"""

from __future__ import annotations

from typing import IO, Any
from urllib.parse import urlsplit

from scanning.models import Severity
from scanning.updaters import Advisory, FeedFormatError, Updater, iter_dicts, load_json, timestamp
from scanning.updaters.severity import best_score

METRICS = (
    ("cvssMetricV31", "CVSS_V3"),
    ("cvssMetricV30", "CVSS_V3"),
    ("cvssMetricV40", "CVSS_V4"),
    ("cvssMetricV2", "CVSS_V2"),
)
NVD_URL = "https://nvd.nist.gov/vuln/detail/"


def vectors(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The (type, vector) pairs of a CVE's metrics, NVD's own (Primary) before the CNA's."""
    found: list[tuple[int, str, str]] = []
    for key, kind in METRICS:
        for metric in metrics.get(key) or []:
            vector = (metric.get("cvssData") or {}).get("vectorString")
            if vector:
                found.append((0 if metric.get("type") == "Primary" else 1, kind, vector))
    return [(kind, vector) for _, kind, vector in sorted(found, key=lambda item: item[0])]


class NvdUpdater(Updater):
    """The National Vulnerability Database, one feed per yearly file."""

    source = "nvd"
    url_setting = "VULNDB_NVD_URLS"

    def feed_name(self, url: str) -> str:
        """nvd-2024 for …/nvdcve-2.0-2024.json.gz."""
        stem = urlsplit(url).path.rsplit("/", 1)[-1].split(".json")[0]
        return "nvd-" + stem.removeprefix("nvdcve-2.0-")

    def parse(self, stream: IO[bytes]) -> list[Advisory]:
        """Every CVE of the file with its English description and best CVSS score."""
        document = load_json(stream)
        if not isinstance(document, dict) or "vulnerabilities" not in document:
            raise FeedFormatError("NVD JSON 2.0: expected an object with vulnerabilities")
        advisories = []
        for item in iter_dicts(document["vulnerabilities"], "NVD vulnerabilities"):
            cve = item.get("cve") or {}
            if not isinstance(cve.get("id"), str):
                raise FeedFormatError("NVD JSON 2.0: a vulnerability has no cve.id")
            # Several primary scores may coexist (v3.1 and v2): best_score keeps the order vectors() gives.
            pairs = vectors(cve.get("metrics") or {})
            score = next((s for s in (best_score([pair]) for pair in pairs) if s is not None), None)
            description = next((d.get("value", "") for d in cve.get("descriptions") or [] if d.get("lang") == "en"), "")
            rejected = cve.get("vulnStatus") == "Rejected"
            advisories.append(
                Advisory(
                    name=cve["id"],
                    description=description,
                    severity=score.severity if score else Severity.UNKNOWN,
                    cvss_score=score.score if score else None,
                    cvss_vector=score.vector if score else "",
                    links=[NVD_URL + cve["id"]] + [ref["url"] for ref in cve.get("references") or [] if ref.get("url")],
                    published=timestamp(cve.get("published")),
                    modified=timestamp(cve.get("lastModified")),
                    withdrawn=timestamp(cve.get("lastModified")) if rejected else None,
                )
            )
        return advisories
