"""Mapping each source's way of rating a vulnerability onto the normalised Severity scale."""

from __future__ import annotations

from dataclasses import dataclass

import cvss
from cvss.exceptions import CVSSError

from scanning.models import Severity

# Debian's urgency as Clair maps it; "low*"/"low**" (urgency guessed by the tracker) count as their base word.
DEBIAN_URGENCY = {
    "unimportant": Severity.NEGLIGIBLE,
    "end-of-life": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "not yet assigned": Severity.UNKNOWN,
}
# Ubuntu's priorities are the scale's own words.
UBUNTU_PRIORITY = {
    "negligible": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
# Red Hat's impact ratings as Clair maps them.
RED_HAT_IMPACT = {
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "important": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
# GitHub's advisory severities (OSV database_specific.severity).
GITHUB_SEVERITY = {
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
# The cvss library's qualitative ratings; a base score of 0 ("None") means no impact.
CVSS_RATING = {
    "none": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


@dataclass(frozen=True)
class Score:
    """A CVSS vector with its base score and the severity it rates."""

    vector: str
    score: float
    severity: str


def debian_urgency(urgency: str) -> str:
    """The severity of a Debian tracker urgency."""
    return DEBIAN_URGENCY.get(urgency.strip().rstrip("*").strip().lower(), Severity.UNKNOWN)


def cvss_score(kind: str, vector: str) -> Score | None:
    """The base score of a CVSS vector of the given OSV type (CVSS_V2, CVSS_V3, CVSS_V4), None if unreadable."""
    try:
        if kind == "CVSS_V4" or vector.startswith("CVSS:4."):
            v4 = cvss.CVSS4(vector)
            return Score(vector, float(v4.base_score), CVSS_RATING[v4.severity.lower()])
        if kind == "CVSS_V3" or vector.startswith("CVSS:3."):
            v3 = cvss.CVSS3(vector)
            return Score(vector, float(v3.scores()[0]), CVSS_RATING[v3.severities()[0].lower()])
        v2 = cvss.CVSS2(vector)
        return Score(vector, float(v2.scores()[0]), CVSS_RATING[v2.severities()[0].lower()])
    except (CVSSError, KeyError, ValueError, TypeError):
        return None


def best_score(entries: list[tuple[str, str]]) -> Score | None:
    """The most telling of several (type, vector) CVSS entries: version 3 first, then 4, then 2."""
    preference = {"CVSS_V3": 0, "CVSS_V4": 1, "CVSS_V2": 2}
    for kind, vector in sorted(entries, key=lambda entry: preference.get(entry[0], 3)):
        score = cvss_score(kind, vector)
        if score is not None:
            return score
    return None
