"""Clair v4 as a scan backend: the client of its indexer and matcher HTTP API (httptransport/api/v1/openapi.yaml).

A scan goes: describe the image as Clair's Manifest (layer blob URLs of the integrated registry that Clair's indexer
downloads itself, with a short-lived pull token in their headers); ask the indexer for its state and skip indexing
when the manifest was indexed under that same state before; else POST the manifest and poll the index report until
IndexFinished or IndexError, within a deadline; GET the matcher's vulnerability report; turn it into the
`matcher.Finding` rows the built-in scanner produces, so policy, reports and UI do not care which backend ran.

Every failure raises ClairError (a RemoteUnreachable, `transient` when trying again later may help) with the reason:
a scan never comes back empty because Clair could not answer.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import jwt
import requests
from django.conf import settings

from portal.core import trust
from portal.core.errors import Invalid, RemoteUnreachable
from registries.client import RegistryClient
from registries.token import Access, issue
from scanning import indexer, matcher
from scanning.indexer import Distribution
from scanning.matcher import FIXED, NO_FIX, Finding
from scanning.models import Severity

# The issuer clairctl signs with: a Clair whose `auth.psk.iss` list serves its own CLI accepts Wharf unchanged.
DEFAULT_ISSUER = "clairctl"
# Clair's signer makes tokens valid a minute either side of now (go-jose's default leeway); so does Wharf.
PSK_TOKEN_LEEWAY = 60
INDEX_FINISHED = "IndexFinished"
INDEX_ERROR = "IndexError"
# The subject of the pull tokens Clair's indexer fetches layers with (the registry's log names it).
PULL_SUBJECT = "wharf-scanner:clair"
# A pull token outlives the wait for the index by this much: Clair may still be reading the last layer.
PULL_TOKEN_MARGIN = 60
DEFAULT_POLL_SECONDS = 1.0
ACCEPT = {
    "index_state": "application/vnd.clair.index_state.v1+json, application/json",
    "index_report": "application/vnd.clair.index_report.v1+json, application/json",
    "vulnerability_report": "application/vnd.clair.vulnerability_report.v1+json, application/json",
}
MANIFEST_TYPE = "application/vnd.clair.manifest.v1+json"
# What a Clair vulnerability name starts with when it is an advisory id ("RHSA-2021:3798: openssl ...",
# "CVE-2021-3711 on Ubuntu 20.04 ...", "DSA-5139-1 openssl"): the finding keeps the id, as the built-in does.
ADVISORY_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[0-9A-Za-z]+(?:[-:][0-9A-Za-z]+)*")
# Where Clair says it found a language package (environment.package_db "python:usr/lib/..."): our namespace for it.
LANGUAGE_DATABASES = {"python": "pypi", "nodejs": "npm", "maven": "maven", "go": "go", "ruby": "gem", "rust": "crates"}
CVSS_ENRICHER = "enricher=clair.cvss"
CVSS_SEVERITIES = {"CRITICAL": "Critical", "HIGH": "High", "MEDIUM": "Medium", "LOW": "Low", "NONE": "Negligible"}


class ClairError(RemoteUnreachable):
    """Clair could not give a report of an image: unreachable, refused, wrong answers, or the index failed."""


@dataclass(frozen=True)
class ClairReport:
    """What Clair found in one image, in Wharf's terms.

    `distribution` is what ImageScan.distribution shows (the pretty name); each finding's `namespace` is the
    advisory namespace ("debian:12"). Keep `index_state` with the scan and hand it back as `known_state` next time:
    an unchanged indexer then skips indexing the image again (`reindexed` says whether it did).
    """

    manifest_digest: str
    findings: list[Finding]
    distribution: str
    package_count: int
    index_state: str
    reindexed: bool


@dataclass(frozen=True)
class MappedReport:
    """A vulnerability report turned into findings, the distribution's name and how many packages it lists."""

    findings: list[Finding]
    distribution: str
    package_count: int


def decode_psk(psk: str) -> bytes:
    """The key of a PSK as Clair's configuration holds it (`auth.psk.key`, base64)."""
    try:
        key = base64.b64decode(psk.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the Clair PSK is not base64 (use the key as written in Clair's auth.psk.key)") from None
    if not key:
        raise Invalid("the Clair PSK is empty")
    return key


def psk_token(key: bytes, issuer: str, now: float | None = None) -> str:
    """A JWT Clair's PSK authentication accepts: HS256 with the decoded key, the issuer, valid a minute each side."""
    moment = int(time.time() if now is None else now)
    claims = {"iss": issuer, "iat": moment, "nbf": moment - PSK_TOKEN_LEEWAY, "exp": moment + PSK_TOKEN_LEEWAY}
    return jwt.encode(claims, key, algorithm="HS256")


class ClairClient:
    """Talks to one Clair v4 deployment (indexer and matcher may be one process or two) for Wharf's registry."""

    def __init__(
        self,
        indexer_url: str,
        matcher_url: str,
        psk: str | None = None,
        issuer: str = DEFAULT_ISSUER,
        *,
        timeout: float | None = None,
        index_deadline: float | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        registry_url: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.indexer_url = indexer_url.rstrip("/")
        self.matcher_url = matcher_url.rstrip("/")
        self.key = decode_psk(psk) if psk else None
        self.issuer = issuer
        self.timeout = float(timeout or settings.CLAIR_TIMEOUT_SECONDS)
        self.index_deadline = float(index_deadline or settings.CLAIR_INDEX_DEADLINE_SECONDS)
        self.poll_seconds = poll_seconds
        self.registry_url = (registry_url or settings.CLAIR_REGISTRY_URL or settings.REGISTRY_URL).rstrip("/")
        self._sessions = trust.Sessions(session)
        self._sleep = sleep

    # The whole scan.

    def scan(
        self, repository: str, reference: str, known_state: str = "", registry: RegistryClient | None = None
    ) -> ClairReport:
        """Index (unless already indexed under the same indexer state) and match one image of the registry."""
        manifest = self.manifest(repository, reference, registry)
        _, state, reindexed = self.index(manifest, known_state)
        mapped = findings_from(self.vulnerability_report(manifest["hash"]))
        return ClairReport(
            manifest["hash"], mapped.findings, mapped.distribution, mapped.package_count, state, reindexed
        )

    def manifest(self, repository: str, reference: str, registry: RegistryClient | None = None) -> dict[str, Any]:
        """Clair's Manifest of the image: its digest and every layer's blob URL with a pull token for the repository."""
        resolved = indexer.resolve_image(registry or RegistryClient(), repository, reference)
        if not resolved.layers:
            raise ClairError(f"{repository}:{reference} has no layers for Clair to index", transient=False)
        lifetime = int(self.index_deadline) + PULL_TOKEN_MARGIN
        token, _ = issue(PULL_SUBJECT, [Access("repository", repository, ("pull",))], lifetime)
        headers = {"Authorization": [f"Bearer {token}"]}
        return {
            "hash": resolved.manifest_digest,
            "layers": [
                {"hash": digest, "uri": f"{self.registry_url}/v2/{repository}/blobs/{digest}", "headers": headers}
                for digest in resolved.layers
            ],
        }

    def check(self) -> str:
        """Whether both services answer and accept Wharf (a registration's Test Connection): the indexer's state."""
        state = self.index_state()
        # No manifest has this digest: a ready matcher answers 404, one without a vulnerability database yet 202.
        path = f"/matcher/api/v1/vulnerability_report/sha256:{'0' * 64}"
        response = self._call("GET", self.matcher_url, path, (202, 404))
        if response.status_code == 202:
            return f"index state {state}; the matcher has not loaded its vulnerability database yet"
        return f"index state {state}; the matcher is ready"

    # The indexer.

    def index_state(self) -> str:
        """The indexer's state token: it changes when Clair's indexers change, and with it what an index holds."""
        body = self._json(self._call("GET", self.indexer_url, "/indexer/api/v1/index_state", (200,)), "an index state")
        state = body.get("state")
        if not isinstance(state, str) or not state:
            raise ClairError(f"Clair's indexer at {self.indexer_url} answered an index state without a state")
        return state

    def index_report(self, digest: str) -> dict[str, Any] | None:
        """The indexer's report of the manifest, None when it has none."""
        path = f"/indexer/api/v1/index_report/{quote(digest, safe=':')}"
        response = self._call("GET", self.indexer_url, path, (200, 404), accept=ACCEPT["index_report"])
        if response.status_code == 404:
            return None
        return _index_report(self._json(response, "an index report"), self.indexer_url)

    def index(self, manifest: dict[str, Any], known_state: str = "") -> tuple[dict[str, Any], str, bool]:
        """The finished index report of the manifest, its indexer state, and whether it was indexed now.

        Indexing is skipped when the caller indexed this manifest under the indexer's current state and Clair still
        holds the finished report; otherwise the manifest is posted and its report polled until done or the deadline.
        """
        deadline = time.monotonic() + self.index_deadline
        state = self.index_state()
        digest = manifest["hash"]
        if known_state and known_state == state:
            report = self.index_report(digest)
            if report is not None and report["state"] == INDEX_FINISHED:
                return report, state, False
        report = self._post_manifest(manifest, deadline)
        return self._wait(digest, report, deadline), state, True

    def _post_manifest(self, manifest: dict[str, Any], deadline: float) -> dict[str, Any]:
        """POST the manifest; Clair answers when the index is done, or sooner with a report still in progress."""
        # Clair indexes before it answers, so the answer may take as long as the whole index may.
        read_timeout = max(deadline - time.monotonic(), self.timeout)
        response = self._call(
            "POST",
            self.indexer_url,
            "/indexer/api/v1/index_report",
            (200, 201),
            json_body=manifest,
            accept=ACCEPT["index_report"],
            read_timeout=read_timeout,
        )
        return _index_report(self._json(response, "an index report"), self.indexer_url)

    def _wait(self, digest: str, report: dict[str, Any] | None, deadline: float) -> dict[str, Any]:
        """Poll the index report until IndexFinished (returned) or IndexError or the deadline (raised)."""
        while True:
            if report is not None and report["state"] == INDEX_ERROR:
                reason = report.get("err") or "no reason given"
                raise ClairError(f"Clair could not index {digest}: {reason}", transient=False)
            if report is not None and report["state"] == INDEX_FINISHED:
                if report.get("success") is False:
                    raise ClairError(f"Clair finished indexing {digest} without success: {report.get('err', '')}")
                return report
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = report["state"] if report is not None else "no report yet"
                raise ClairError(
                    f"Clair did not finish indexing {digest} within {self.index_deadline:g} s (last state: {last})"
                )
            self._sleep(min(self.poll_seconds, remaining))
            report = self.index_report(digest)

    # The matcher.

    def vulnerability_report(self, digest: str) -> dict[str, Any]:
        """The matcher's vulnerability report of an indexed manifest."""
        path = f"/matcher/api/v1/vulnerability_report/{quote(digest, safe=':')}"
        response = self._call(
            "GET", self.matcher_url, path, (200, 201, 202, 404), accept=ACCEPT["vulnerability_report"]
        )
        if response.status_code == 202:
            # Clair answers 202 until its matcher has loaded a vulnerability database: no report is not a clean one.
            raise ClairError(f"Clair's matcher at {self.matcher_url} has not loaded its vulnerability database yet")
        if response.status_code == 404:
            raise ClairError(f"Clair's matcher has no finished index of {digest}: {_message(response)}")
        return self._json(response, "a vulnerability report")

    # Transport.

    def session_for(self, url: str) -> requests.Session:
        """The session for the URL: the one given, a plain one for http://, else one verifying on the trust flow."""
        return self._sessions.for_url(url)

    def _call(
        self,
        method: str,
        base: str,
        path: str,
        expected: tuple[int, ...],
        *,
        json_body: Any = None,
        accept: str = "application/json",
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One request to Clair, signed when a PSK is set; faults and unexpected statuses become ClairError."""
        url = f"{base}{path}"
        headers = {"Accept": accept}
        if self.key is not None:
            headers["Authorization"] = f"Bearer {psk_token(self.key, self.issuer)}"
        if json_body is not None:
            headers["Content-Type"] = MANIFEST_TYPE
        try:
            response = self.session_for(url).request(
                method, url, headers=headers, json=json_body, timeout=(self.timeout, read_timeout or self.timeout)
            )
        except requests.RequestException as exc:
            raise _network_error(exc, base, url, self.timeout) from None
        if response.status_code in expected:
            return response
        raise self._status_error(method, base, path, response)

    def _status_error(self, method: str, base: str, path: str, response: requests.Response) -> ClairError:
        """The error of an answer the API does not give on success."""
        status = response.status_code
        where = f"Clair at {base} answered {method} {path} with {status}"
        if status == 401:
            if self.key is None:
                return ClairError(f"{where}: it requires PSK authentication and no PSK is set", transient=False)
            reason = f"it refused the PSK token (is the key right, and is '{self.issuer}' among its auth.psk.iss?)"
            return ClairError(f"{where}: {reason}", transient=False)
        return ClairError(f"{where}: {_message(response)}", transient=status >= 500 or status == 429)

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        """The response's JSON object, or ClairError saying Clair's answer is not one."""
        try:
            body = response.json()
        except ValueError:
            raise ClairError(
                f"Clair at {response.url} answered {what} that is not JSON: {response.text[:200]!r}",
                transient=False,
            ) from None
        if not isinstance(body, dict):
            raise ClairError(f"Clair at {response.url} answered {what} that is not a JSON object", transient=False)
        return body


def _network_error(exc: requests.RequestException, base: str, url: str, timeout: float) -> Exception:
    """The domain error of a request that got no answer (an unknown certificate stays the trust dialog's)."""
    translated = trust.translate_request_error(exc, url, timeout)
    if isinstance(translated, trust.UntrustedCertificate):
        return translated
    return ClairError(f"Clair at {base} did not answer: {translated.message}")


def _message(response: requests.Response) -> str:
    """Clair's error message ({"code", "message"}), else the start of the body, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:500]
    return response.text.strip()[:200] or response.reason or "no reason given"


def _index_report(body: dict[str, Any], base: str) -> dict[str, Any]:
    """The body if it is an index report (manifest_hash, state and success are required), else ClairError."""
    missing = [key for key in ("manifest_hash", "state") if not isinstance(body.get(key), str)]
    if missing:
        raise ClairError(f"Clair at {base} answered an index report without {', '.join(missing)}", transient=False)
    return body


# Mapping a vulnerability report onto findings.

REPORT_MAPS = ("packages", "distributions", "environments", "vulnerabilities", "package_vulnerabilities")


class MalformedReport(ClairError):
    """A vulnerability report that does not have the shape of Clair's schema."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Clair's vulnerability report is malformed: {reason}", transient=False)


def findings_from(report: Mapping[str, Any]) -> MappedReport:
    """The findings of a vulnerability report, worst first, as matcher.match sorts them."""
    maps = {name: _map(report, name) for name in REPORT_MAPS}
    repositories = report.get("repository") or {}
    cvss = cvss_by_vulnerability(report.get("enrichments") or {})
    findings: set[Finding] = set()
    for package_id, vulnerability_ids in maps["package_vulnerabilities"].items():
        package = _object(maps["packages"], package_id, "packages")
        environment = _environment(maps["environments"].get(package_id))
        if not isinstance(vulnerability_ids, list):
            raise MalformedReport(f"package_vulnerabilities[{package_id!r}] is not a list")
        for vulnerability_id in vulnerability_ids:
            vulnerability = _object(maps["vulnerabilities"], vulnerability_id, "vulnerabilities")
            distribution = maps["distributions"].get(environment.get("distribution_id")) or vulnerability.get(
                "distribution"
            )
            namespace = _namespace(distribution, environment, repositories)
            findings.add(_finding(package, vulnerability, namespace, environment, cvss.get(str(vulnerability_id))))
    ordered = sorted(findings, key=lambda f: (-Severity.rank(f.severity), f.vulnerability, f.package, f.path))
    distribution = _image_distribution(maps["distributions"], maps["environments"])
    return MappedReport(ordered, distribution, len(maps["packages"]))


def _map(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = report.get(name)
    if not isinstance(value, dict):
        raise MalformedReport(f"'{name}' is {'missing' if value is None else 'not an object'}")
    return value


def _object(mapping: dict[str, Any], key: Any, name: str) -> dict[str, Any]:
    value = mapping.get(str(key))
    if not isinstance(value, dict):
        raise MalformedReport(f"{name}[{key!r}] is named but {'missing' if value is None else 'not an object'}")
    return value


def _environment(environments: Any) -> dict[str, Any]:
    """The first environment a package was found in (a package found twice is one finding)."""
    if isinstance(environments, list):
        for environment in environments:
            if isinstance(environment, dict):
                return environment
    return {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def advisory_id(name: str) -> str:
    """The advisory id a Clair vulnerability name starts with, else the name as it is."""
    match = ADVISORY_ID.match(name.strip())
    return match.group(0) if match else name.strip()


def fixed_version(value: str) -> str:
    """The fixed version as Clair gives it; OSV-fed ones are a query string ("introduced=1.0&fixed=1.2")."""
    if "=" not in value:
        return value
    fields = parse_qs(value)
    return fields["fixed"][0] if fields.get("fixed") else ""


def _finding(
    package: dict[str, Any],
    vulnerability: dict[str, Any],
    namespace: str,
    environment: dict[str, Any],
    cvss: dict[str, Any] | None,
) -> Finding:
    """One report row: the installed package (Clair's vulnerability may name its source package) and the advisory."""
    fixed = fixed_version(_text(vulnerability.get("fixed_in_version")))
    severity = _text(vulnerability.get("normalized_severity"))
    if severity not in Severity.values:
        severity = Severity.UNKNOWN
    if severity == Severity.UNKNOWN and cvss is not None:
        # What the built-in scanner does with NVD: a source without a severity defers to the CVSS one.
        severity = CVSS_SEVERITIES.get(_text(cvss.get("baseSeverity")).upper(), Severity.UNKNOWN)
    source = package.get("source") if isinstance(package.get("source"), dict) else {}
    score = cvss.get("baseScore") if cvss is not None else None
    return Finding(
        vulnerability=advisory_id(_text(vulnerability.get("name")) or _text(vulnerability.get("id"))),
        package=_text(package.get("name")),
        installed_version=_text(package.get("version")),
        fixed_version=fixed,
        severity=severity,
        status=FIXED if fixed else NO_FIX,
        namespace=namespace,
        source_package=_text(source.get("name")),
        path=_text(environment.get("package_db")),
        description=_text(vulnerability.get("description")),
        links=tuple(_text(vulnerability.get("links")).split()),
        cvss_score=float(score) if isinstance(score, int | float) else None,
        cvss_vector=_text(cvss.get("vectorString")) if cvss is not None else "",
    )


def _namespace(distribution: Any, environment: dict[str, Any], repositories: Any) -> str:
    """The advisory namespace of a package: its language's ("pypi"), else its distribution's ("debian:12")."""
    database = _text(environment.get("package_db"))
    kind = database.split(":", 1)[0] if ":" in database else ""
    if kind in LANGUAGE_DATABASES:
        return LANGUAGE_DATABASES[kind]
    if not isinstance(distribution, dict):
        return ""
    found = _distribution(distribution)
    # The built-in scanner's namespace names (debian:12, alpine:3.19, rhel:9) when it knows the distribution.
    return matcher.namespace_of(found, "os") or (f"{found.id}:{found.version_id}" if found.version_id else found.id)


def _distribution(record: dict[str, Any]) -> Distribution:
    """Clair's distribution record as the indexer's Distribution."""
    return Distribution(
        _text(record.get("did")),
        _text(record.get("version_id")),
        _text(record.get("version_code_name")),
        _text(record.get("pretty_name")),
    )


def _image_distribution(distributions: dict[str, Any], environments: dict[str, Any]) -> str:
    """The name of the distribution most packages were found on (as ImageScan.distribution shows it)."""
    counts = Counter(
        environment.get("distribution_id")
        for found in environments.values()
        if isinstance(found, list)
        for environment in found
        if isinstance(environment, dict) and environment.get("distribution_id") in distributions
    )
    ranked = [key for key, _ in counts.most_common()] or sorted(distributions)
    for key in ranked:
        record = distributions[key]
        if isinstance(record, dict):
            name = _text(record.get("pretty_name")) or " ".join(
                part for part in (_text(record.get("name")), _text(record.get("version"))) if part
            )
            return name or _text(record.get("did"))
    return ""


def cvss_by_vulnerability(enrichments: Any) -> dict[str, dict[str, Any]]:
    """The highest-scored CVSS record of each vulnerability id from Clair's CVSS enricher, if it ran.

    The enrichment is a list of objects mapping vulnerability ids to CVSS records ({baseScore, baseSeverity,
    vectorString}); the key carries the schema URL, which changed between releases, so only the enricher is matched.
    """
    best: dict[str, dict[str, Any]] = {}
    if not isinstance(enrichments, dict):
        return best
    for kind, entries in enrichments.items():
        if CVSS_ENRICHER not in kind or not isinstance(entries, list):
            continue
        for entry in entries:
            for vulnerability_id, records in entry.items() if isinstance(entry, dict) else ():
                for record in records if isinstance(records, list) else [records]:
                    if isinstance(record, dict) and isinstance(record.get("baseScore"), int | float):
                        kept = best.get(vulnerability_id)
                        if kept is None or record["baseScore"] > kept["baseScore"]:
                            best[vulnerability_id] = record
    return best
