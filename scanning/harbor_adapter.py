"""The Harbor pluggable scanner-adapter API (spec v1.1 and v1.2): its data and media types, shared by the client
(scanning.harbor_adapter_client) and the server (scanning.api.adapter_views).

Written from goharbor/pluggable-scanner-spec, api/spec/scanner-adapter-openapi-v1.1.yaml and -v1.2.yaml. What
comes in from the other side is validated here, once: a document that is not what the spec says raises
MalformedDocument naming the field, never a KeyError deep in a caller. A report maps onto the findings of
scanning.matcher (the currency every scan backend pays in) and back; Harbor's severity scale is ours.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.core.errors import DomainError, Invalid
from scanning.matcher import FIXED, NO_FIX, Finding
from scanning.models import SEVERITY_ORDER, Severity

# Media types.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONSUMED_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
SCAN_REQUEST_V10 = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
SCAN_REQUEST_V11 = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
SCAN_RESPONSE = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
METADATA_V10 = "application/vnd.scanner.adapter.metadata+json; version=1.0"
METADATA_V11 = "application/vnd.scanner.adapter.metadata+json; version=1.1"
ERROR = "application/vnd.scanner.adapter.error+json; version=1.0"
# The report Harbor 2.x asks for (spec v1.2), the native one every adapter produces (v1.0, v1.1), and the
# "version=1.1" spelling of the native one that the v1.1 document's examples use.
VULNERABILITY_REPORT = "application/vnd.security.vulnerability.report; version=1.1"
HARBOR_REPORT_V10 = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
HARBOR_REPORT_V11 = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.1"
REPORT_TYPES = (VULNERABILITY_REPORT, HARBOR_REPORT_V10, HARBOR_REPORT_V11)
SCAN_REQUEST_TYPES = (SCAN_REQUEST_V10, SCAN_REQUEST_V11, "application/json")
VULNERABILITY_CAPABILITY = "vulnerability"

# Where our findings' details that the spec has no field for travel: the item's vendor_attributes.
NAMESPACE_ATTRIBUTE = "namespace"
SOURCE_PACKAGE_ATTRIBUTE = "source_package"
PATH_ATTRIBUTE = "package_path"

DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The distribution spec's repository name: lowercase path components separated by slashes.
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
MAX_TEXT = 64 * 1024
# What a scan request's fields may hold (and a scan row stores).
MAX_URL, MAX_REPOSITORY, MAX_DIGEST = 1000, 255, 150


class MalformedDocument(Invalid):
    """A document of the adapter API that is not what the spec says; the message names the field."""


def media_type_key(value: str) -> str:
    """A media type compared the way servers spell it differently: lowercase, no spaces, `;`-separated."""
    return ";".join(part.strip() for part in (value or "").lower().split(";") if part.strip())


def same_media_type(value: str, expected: str) -> bool:
    """Whether a Content-Type or Accept entry names the expected media type (parameters included)."""
    return media_type_key(value) == media_type_key(expected)


def known_media_type(value: str, known: Iterable[str]) -> str | None:
    """The media type of `known` that `value` names, None when none."""
    return next((item for item in known if same_media_type(value, item)), None)


# --- reading what comes in ------------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedDocument(
            f"{where} must be a JSON object, not {type(value).__name__}", {where: ["Not an object."]}
        )
    return value


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise MalformedDocument(f"{where}.{key} is required", {f"{where}.{key}": ["This field is required."]})
        return ""
    if not isinstance(value, str):
        raise MalformedDocument(
            f"{where}.{key} must be a string, not {type(value).__name__}", {f"{where}.{key}": ["Not a string."]}
        )
    if len(value) > MAX_TEXT:
        raise MalformedDocument(
            f"{where}.{key} is longer than {MAX_TEXT} characters", {f"{where}.{key}": ["Too long."]}
        )
    return value


def _texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedDocument(
            f"{where}.{key} must be a list of strings", {f"{where}.{key}": ["Not a list of strings."]}
        )
    return tuple(value)


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    """A score: a JSON number, or a numeric string (the v1.1 document types cve3_score as a string)."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedDocument(f"{where}.{key} must be a number", {f"{where}.{key}": ["Not a number."]})
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MalformedDocument(
            f"{where}.{key} must be a number, not {value!r}", {f"{where}.{key}": ["Not a number."]}
        ) from None


def severity_of(value: Any, where: str) -> str:
    """Harbor's severity as ours (the same scale; spelled in any case); anything else is malformed."""
    if not isinstance(value, str):
        raise MalformedDocument(f"{where} must be one of {', '.join(SEVERITY_ORDER)}", {where: ["Not a severity."]})
    for severity in SEVERITY_ORDER:
        if severity.lower() == value.strip().lower():
            return severity
    raise MalformedDocument(
        f"{where} is {value!r}, not one of {', '.join(SEVERITY_ORDER)}", {where: ["Not a severity."]}
    )


@dataclass(frozen=True)
class Scanner:
    """Who made a report or serves an API: name, vendor, version."""

    name: str
    vendor: str = ""
    version: str = ""

    def as_dict(self) -> dict[str, str]:
        """The spec's Scanner object."""
        return {"name": self.name, "vendor": self.vendor, "version": self.version}

    @classmethod
    def from_dict(cls, data: Any, where: str = "scanner") -> Scanner:
        """A Scanner object read from an answer; its name is required."""
        data = _object(data, where)
        return cls(
            _text(data, "name", where, required=True), _text(data, "vendor", where), _text(data, "version", where)
        )


@dataclass(frozen=True)
class Capability:
    """What a scanner reads and writes: artifact media types in, report media types out (v1.2 adds a type)."""

    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    type: str = VULNERABILITY_CAPABILITY

    def as_dict(self) -> dict[str, Any]:
        """The spec's ScannerCapability object."""
        return {
            "type": self.type,
            "consumes_mime_types": list(self.consumes),
            "produces_mime_types": list(self.produces),
        }


@dataclass(frozen=True)
class ScannerAdapterMetadata:
    """The answer to GET /metadata: the scanner, its capabilities and free-form properties."""

    scanner: Scanner
    capabilities: tuple[Capability, ...]
    properties: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The spec's ScannerAdapterMetadata object."""
        return {
            "scanner": self.scanner.as_dict(),
            "capabilities": [capability.as_dict() for capability in self.capabilities],
            "properties": dict(self.properties),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ScannerAdapterMetadata:
        """The metadata read from an answer; scanner and capabilities are required."""
        data = _object(data, "metadata")
        if not isinstance(data.get("capabilities"), list) or not data["capabilities"]:
            raise MalformedDocument("metadata.capabilities must be a non-empty list", {"capabilities": ["Required."]})
        capabilities = []
        for number, item in enumerate(data["capabilities"]):
            where = f"metadata.capabilities[{number}]"
            item = _object(item, where)
            kind = _text(item, "type", where) or VULNERABILITY_CAPABILITY
            capabilities.append(
                Capability(_texts(item, "consumes_mime_types", where), _texts(item, "produces_mime_types", where), kind)
            )
        properties = data.get("properties") or {}
        if not isinstance(properties, dict):
            raise MalformedDocument("metadata.properties must be an object", {"properties": ["Not an object."]})
        return cls(
            Scanner.from_dict(data.get("scanner"), "metadata.scanner"),
            tuple(capabilities),
            {str(key): str(value) for key, value in properties.items()},
        )

    def report_types(self) -> tuple[str, ...]:
        """The vulnerability report media types the scanner produces."""
        return tuple(
            produced
            for capability in self.capabilities
            if capability.type == VULNERABILITY_CAPABILITY
            for produced in capability.produces
        )


@dataclass(frozen=True)
class Artifact:
    """The image a scan is about: repository, manifest digest, tag (optional) and manifest media type."""

    repository: str
    digest: str
    tag: str = ""
    mime_type: str = DOCKER_MANIFEST

    def as_dict(self) -> dict[str, str]:
        """The spec's Artifact object."""
        return {"repository": self.repository, "digest": self.digest, "tag": self.tag, "mime_type": self.mime_type}


@dataclass(frozen=True)
class ScanRequest:
    """The body of POST /scan: where to pull the artifact from (and the Authorization header to pull with)."""

    registry_url: str
    authorization: str = field(repr=False)
    artifact: Artifact
    # The v1.2 spec's enabled_capabilities types; empty: every capability (as before v1.2).
    capabilities: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The spec's ScanRequest object."""
        registry = {"url": self.registry_url}
        if self.authorization:
            registry["authorization"] = self.authorization
        return {"registry": registry, "artifact": self.artifact.as_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> ScanRequest:
        """A scan request read from a body. MalformedDocument (400) for wrong JSON types, Invalid (422) for a
        field whose value is wrong: a URL that is not http(s), a repository or digest the registry cannot have."""
        data = _object(data, "request")
        registry = _object(data.get("registry"), "registry")
        artifact = _object(data.get("artifact"), "artifact")
        url = _text(registry, "url", "registry", required=True)
        authorization = _text(registry, "authorization", "registry")
        repository = _text(artifact, "repository", "artifact", required=True)
        digest = _text(artifact, "digest", "artifact", required=True)
        tag = _text(artifact, "tag", "artifact")
        mime_type = _text(artifact, "mime_type", "artifact") or DOCKER_MANIFEST
        _check_value(len(url) <= MAX_URL, "registry.url", f"the registry URL is longer than {MAX_URL} characters")
        _check_value(
            len(repository) <= MAX_REPOSITORY and bool(REPOSITORY.match(repository)),
            "artifact.repository",
            f"'{repository[:300]}' is not a repository name",
        )
        _check_value(
            len(digest) <= MAX_DIGEST and bool(DIGEST.match(digest)),
            "artifact.digest",
            f"'{digest[:200]}' is not a digest (algorithm:hex)",
        )
        _check_value(not tag or bool(TAG.match(tag)), "artifact.tag", f"'{tag}' is not a tag")
        _check_value(
            known_media_type(mime_type, CONSUMED_TYPES) is not None,
            "artifact.mime_type",
            f"'{mime_type}' is not an image manifest type this scanner reads ({', '.join(CONSUMED_TYPES)})",
        )
        _check_value(
            authorization == "" or bool(re.match(r"^(Basic|Bearer) \S+$", authorization, re.IGNORECASE)),
            "registry.authorization",
            "the authorization must be 'Basic <credentials>' or 'Bearer <token>'",
        )
        capabilities = _capabilities(data.get("enabled_capabilities"))
        if capabilities and VULNERABILITY_CAPABILITY not in capabilities:
            raise Unsupported(
                f"this scanner has only the '{VULNERABILITY_CAPABILITY}' capability, not {', '.join(capabilities)}"
            )
        media_type = known_media_type(mime_type, CONSUMED_TYPES) or mime_type
        return cls(url, authorization, Artifact(repository, digest, tag, media_type), capabilities)


def _capabilities(value: Any) -> tuple[str, ...]:
    """The types of a v1.2 request's enabled_capabilities ([{"type": "vulnerability", ...}])."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedDocument("enabled_capabilities must be a list", {"enabled_capabilities": ["Not a list."]})
    return tuple(
        _text(_object(item, "enabled_capabilities[]"), "type", "enabled_capabilities[]", required=True)
        for item in value
    )


class InvalidField(Invalid):
    """A field of a well-formed request whose value cannot be used (the spec's 422)."""

    status = 422


class Unsupported(DomainError):
    """A scan or report this scanner has no capability for (the v1.2 spec's 501): an SBOM, a raw report."""

    status = 501


def _check_value(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise InvalidField(message, {name: [message]})


# --- reports ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VulnerabilityReport:
    """A HarborVulnerabilityReport: when, of what, by which scanner, the worst severity and the findings."""

    generated_at: datetime.datetime
    artifact: Artifact
    scanner: Scanner
    findings: tuple[Finding, ...]

    @property
    def severity(self) -> str:
        """The worst severity found (Unknown for none)."""
        return max((finding.severity for finding in self.findings), key=Severity.rank, default=Severity.UNKNOWN)

    def as_dict(self) -> dict[str, Any]:
        """The spec's HarborVulnerabilityReport object."""
        return {
            "generated_at": self.generated_at.isoformat().replace("+00:00", "Z"),
            "artifact": self.artifact.as_dict(),
            "scanner": self.scanner.as_dict(),
            "severity": self.severity,
            "vulnerabilities": [vulnerability_item(finding) for finding in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Any) -> VulnerabilityReport:
        """A report read from an answer; MalformedDocument names the first field that is not as the spec says."""
        data = _object(data, "report")
        vulnerabilities = data.get("vulnerabilities")
        if vulnerabilities is None:
            vulnerabilities = []
        if not isinstance(vulnerabilities, list):
            raise MalformedDocument("report.vulnerabilities must be a list", {"vulnerabilities": ["Not a list."]})
        if data.get("severity") not in (None, ""):
            severity_of(data["severity"], "report.severity")
        artifact = _object(data.get("artifact") or {}, "report.artifact")
        return cls(
            _timestamp(data.get("generated_at")),
            Artifact(
                _text(artifact, "repository", "report.artifact"),
                _text(artifact, "digest", "report.artifact"),
                _text(artifact, "tag", "report.artifact"),
                _text(artifact, "mime_type", "report.artifact"),
            ),
            Scanner.from_dict(data.get("scanner") or {"name": "unknown"}, "report.scanner"),
            tuple(finding_of(item, f"report.vulnerabilities[{number}]") for number, item in enumerate(vulnerabilities)),
        )


def _timestamp(value: Any) -> datetime.datetime:
    if value in (None, ""):
        return datetime.datetime.now(datetime.UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    raise MalformedDocument(
        f"report.generated_at is not a date-time: {value!r}", {"generated_at": ["Not a date-time."]}
    )


def _is_cvss_v2(vector: str) -> bool:
    """CVSS v3 vectors start with their version ("CVSS:3.1/..."); v2 vectors have no prefix ("AV:N/...")."""
    return bool(vector) and not vector.upper().startswith("CVSS:")


def vulnerability_item(finding: Finding) -> dict[str, Any]:
    """One finding as the spec's VulnerabilityItem; what the spec has no field for goes in vendor_attributes."""
    item: dict[str, Any] = {
        "id": finding.vulnerability,
        "package": finding.package,
        "version": finding.installed_version,
        "fix_version": finding.fixed_version,
        "severity": finding.severity,
        "description": finding.description,
        "links": list(finding.links),
        "cwe_ids": [],
        "vendor_attributes": {
            NAMESPACE_ATTRIBUTE: finding.namespace,
            SOURCE_PACKAGE_ATTRIBUTE: finding.source_package,
            PATH_ATTRIBUTE: finding.path,
        },
    }
    if finding.cvss_score is not None or finding.cvss_vector:
        version = "v2" if _is_cvss_v2(finding.cvss_vector) else "v3"
        cvss: dict[str, Any] = {}
        if finding.cvss_score is not None:
            cvss[f"score_{version}"] = finding.cvss_score
        if finding.cvss_vector:
            cvss[f"vector_{version}"] = finding.cvss_vector
        item["preferred_cvss"] = cvss
    return item


def finding_of(item: Any, where: str) -> Finding:
    """A VulnerabilityItem as a finding: id, package and severity are required; CVSS from preferred_cvss (v1.2)
    or the v1.1 document's cve3_score/cvss3_vector fields."""
    item = _object(item, where)
    fixed = _text(item, "fix_version", where)
    vendor = item.get("vendor_attributes") or {}
    if not isinstance(vendor, dict):
        raise MalformedDocument(f"{where}.vendor_attributes must be an object", {where: ["Not an object."]})
    cvss = _object(item.get("preferred_cvss") or {}, f"{where}.preferred_cvss")
    score = _number(cvss, "score_v3", f"{where}.preferred_cvss")
    if score is None:
        score = _number(cvss, "score_v2", f"{where}.preferred_cvss")
    if score is None:
        score = _number(item, "cve3_score", where)
    vector = (
        _text(cvss, "vector_v3", f"{where}.preferred_cvss")
        or _text(cvss, "vector_v2", f"{where}.preferred_cvss")
        or _text(item, "cvss3_vector", where)
    )
    _texts(item, "cwe_ids", where)

    def attribute(name: str) -> str:
        value = vendor.get(name)
        return value if isinstance(value, str) else ""

    return Finding(
        vulnerability=_text(item, "id", where, required=True),
        package=_text(item, "package", where, required=True),
        installed_version=_text(item, "version", where),
        fixed_version=fixed,
        severity=severity_of(item.get("severity"), f"{where}.severity"),
        status=FIXED if fixed else NO_FIX,
        namespace=attribute(NAMESPACE_ATTRIBUTE),
        source_package=attribute(SOURCE_PACKAGE_ATTRIBUTE),
        path=attribute(PATH_ATTRIBUTE),
        description=_text(item, "description", where),
        links=_texts(item, "links", where),
        cvss_score=score,
        cvss_vector=vector,
    )


def error_body(message: str) -> dict[str, Any]:
    """The spec's ErrorResponse."""
    return {"error": {"message": message}}


def error_message(data: Any) -> str:
    """The message of an ErrorResponse, "" when the body is not one."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = data["error"].get("message")
        return message if isinstance(message, str) else ""
    return ""
