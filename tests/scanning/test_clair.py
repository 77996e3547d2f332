"""The Clair v4 client against a Clair stand-in written from Clair's OpenAPI document (tests/scanning/clair_server.py)
and a real registry holding the scanning fixture image: the stand-in downloads every layer with the pull token the
client put in the manifest; the report it answers is mapped finding by finding; an unchanged indexer state skips
indexing; every bad answer fails with its reason, never with an empty report.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import astuple
from typing import Any

import jwt
import pytest

from portal.core.errors import Invalid
from scanning.clair import (
    ClairClient,
    ClairError,
    MalformedReport,
    advisory_id,
    findings_from,
    fixed_version,
    psk_token,
)
from scanning.matcher import Finding
from tests.integration.registry import Registry
from tests.scanning.clair_server import ClairServer
from tests.scanning.image_builder import BuiltImage, push_built_image
from tests.scanning.scanned_images import FINDINGS, OPENSSL

pytestmark = pytest.mark.integration

REPOSITORY = "web/openssl"
DEBIAN = {
    "id": "1",
    "did": "debian",
    "name": "Debian GNU/Linux",
    "version": "12 (bookworm)",
    "version_code_name": "bookworm",
    "version_id": "12",
    "arch": "amd64",
    "pretty_name": "Debian GNU/Linux 12 (bookworm)",
}
CVSS_KEY = (
    "message/vnd.clair.map.vulnerability; enricher=clair.cvss "
    "schema=https://csrc.nist.gov/schema/nvd/feed/1.1/cvss-v3.x.json"
)
CRITICAL_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CRITICAL_CVSS = {"version": "3.1", "vectorString": CRITICAL_VECTOR, "baseScore": 9.8, "baseSeverity": "CRITICAL"}
DPKG = "var/lib/dpkg/status"


def debian_vulnerability(key: str, name: str, severity: str, fixed: str, links: str, description: str) -> dict:
    """A vulnerability as Clair's Debian updater files it: against the source package, on bookworm."""
    return {
        "id": key,
        "updater": "debian/updater/bookworm",
        "name": name,
        "description": description,
        "issued": "2024-01-10T00:00:00Z",
        "links": links,
        "severity": severity.lower(),
        "normalized_severity": severity,
        "package": {"id": "", "name": "openssl", "version": "", "kind": "source"},
        "distribution": DEBIAN,
        "arch_op": "equals",
        "fixed_in_version": fixed,
    }


def canned_report(image: BuiltImage) -> dict[str, Any]:
    """What Clair would answer for the fixture image: libssl3 and openssl (source openssl), three advisories.

    Each is the advisory the fixture feeds give the built-in scanner, so both backends agree on the image; the third
    comes without a Debian severity and takes the CVSS enricher's.
    """
    packages_layer = image.layer_digests[1]

    def package(key: str, name: str) -> dict[str, Any]:
        source = {"id": f"{key}1", "name": "openssl", "version": OPENSSL, "kind": "source"}
        return {"id": key, "name": name, "version": OPENSSL, "kind": "binary", "source": source, "arch": "amd64"}

    environment = [{"package_db": DPKG, "introduced_in": packages_layer, "distribution_id": "1", "repository_ids": []}]
    return {
        "manifest_hash": image.digest,
        "packages": {"10": package("10", "libssl3"), "12": package("12", "openssl")},
        "distributions": {"1": DEBIAN},
        "repository": {},
        "environments": {"10": environment, "12": environment},
        "vulnerabilities": {
            "100": debian_vulnerability(
                "100",
                "CVE-0000-1001",
                "High",
                "3.0.11-1~deb12u2",
                "https://security-tracker.debian.org/tracker/CVE-0000-1001 https://example.test/DSA-0000-1",
                "A buffer overflow in the TLS handshake.",
            ),
            "101": debian_vulnerability(
                "101",
                "CVE-0000-1004",
                "Negligible",
                "",
                "https://security-tracker.debian.org/tracker/CVE-0000-1004",
                "A timing side channel in a rarely used cipher.",
            ),
            "102": debian_vulnerability(
                "102", "CVE-0000-1006", "Unknown", "", "", "A use after free in the X.509 parser."
            ),
        },
        "package_vulnerabilities": {"10": ["100", "101", "102"], "12": ["100", "101", "102"]},
        "enrichments": {CVSS_KEY: [{"102": [CRITICAL_CVSS]}]},
    }


def expected_findings() -> list[Finding]:
    """The canned report as findings, worst first, with every decoration."""
    tracker = "https://security-tracker.debian.org/tracker/"
    rows = []
    for package in ("libssl3", "openssl"):
        rows.append(
            (
                "CVE-0000-1006",
                package,
                "Critical",
                "",
                "no fix yet",
                "A use after free in the X.509 parser.",
                (),
                9.8,
                CRITICAL_VECTOR,
            )
        )
    for package in ("libssl3", "openssl"):
        rows.append(
            (
                "CVE-0000-1001",
                package,
                "High",
                "3.0.11-1~deb12u2",
                "fixed",
                "A buffer overflow in the TLS handshake.",
                (f"{tracker}CVE-0000-1001", "https://example.test/DSA-0000-1"),
                None,
                "",
            )
        )
    for package in ("libssl3", "openssl"):
        rows.append(
            (
                "CVE-0000-1004",
                package,
                "Negligible",
                "",
                "no fix yet",
                "A timing side channel in a rarely used cipher.",
                (f"{tracker}CVE-0000-1004",),
                None,
                "",
            )
        )
    return [
        Finding(
            vulnerability=name,
            package=package,
            installed_version=OPENSSL,
            fixed_version=fixed,
            severity=severity,
            status=status,
            namespace="debian:12",
            source_package="openssl",
            path=DPKG,
            description=description,
            links=links,
            cvss_score=score,
            cvss_vector=vector,
        )
        for name, package, severity, fixed, status, description, links, score, vector in rows
    ]


@pytest.fixture(scope="module")
def pushed_image(registry: Registry, vulnerable_image: BuiltImage) -> BuiltImage:
    """The fixture image in the module's registry as web/openssl:1.0."""
    assert push_built_image(registry.url, REPOSITORY, "1.0", vulnerable_image) == vulnerable_image.digest
    return vulnerable_image


@pytest.fixture
def clair(pushed_image: BuiltImage) -> Iterator[ClairServer]:
    """A Clair stand-in with the canned report of the fixture image."""
    server = ClairServer()
    server.reports[pushed_image.digest] = canned_report(pushed_image)
    yield server
    server.close()


def client_of(server: ClairServer, **options: Any) -> ClairClient:
    """A client of the stand-in with quick polling and a short deadline (the tests' images are tiny)."""
    return ClairClient(
        server.url, server.url, poll_seconds=0.05, index_deadline=options.pop("index_deadline", 10), **options
    )


def fails(client: ClairClient, transient: bool | None = None) -> ClairError:
    """The error a scan of the fixture image raises (a scan must never come back as a clean report)."""
    with pytest.raises(ClairError) as caught:
        client.scan(REPOSITORY, "1.0")
    if transient is not None:
        assert caught.value.transient is transient, caught.value.message
    return caught.value


# The manifest and the mapping.


def test_clair_fetches_every_layer_with_the_pull_token_and_its_report_maps_finding_by_finding(
    wired: Registry, clair: ClairServer, pushed_image: BuiltImage
) -> None:
    report = client_of(clair).scan(REPOSITORY, "1.0")

    manifest = clair.manifests[pushed_image.digest]
    assert manifest["hash"] == pushed_image.digest
    assert [layer["hash"] for layer in manifest["layers"]] == pushed_image.layer_digests
    for layer in manifest["layers"]:
        assert layer["uri"] == f"{wired.url}/v2/{REPOSITORY}/blobs/{layer['hash']}"
        [authorization] = layer["headers"]["Authorization"]
        claims = jwt.decode(authorization.removeprefix("Bearer "), options={"verify_signature": False})
        assert claims["access"] == [{"type": "repository", "name": REPOSITORY, "actions": ["pull"]}]
        # The token lives as long as the client waits for the index, and a minute more.
        assert claims["exp"] - claims["iat"] == 10 + 60
    fetched = clair.fetches[pushed_image.digest]
    assert [(fetch.status, fetch.verified) for fetch in fetched] == [(200, True)] * len(pushed_image.layers)

    assert report.manifest_digest == pushed_image.digest
    assert report.reindexed is True and report.index_state == clair.state
    assert report.distribution == "Debian GNU/Linux 12 (bookworm)"
    assert report.package_count == 2
    assert [astuple(finding) for finding in report.findings] == [astuple(finding) for finding in expected_findings()]
    # The same rows the built-in scanner reports for this image from the fixture feeds.
    rows = {(f.vulnerability, f.package, f.installed_version, f.fixed_version, f.severity) for f in report.findings}
    assert rows == FINDINGS


def test_the_registry_refuses_layer_downloads_without_the_pull_token(wired: Registry, clair: ClairServer) -> None:
    clair.send_headers = False

    error = fails(client_of(clair), transient=False)

    assert "Clair could not index sha256:" in error.message
    assert "answered 401" in error.message


def test_an_unchanged_index_state_skips_indexing_and_a_new_one_indexes_again(
    wired: Registry, clair: ClairServer
) -> None:
    client = client_of(clair)
    first = client.scan(REPOSITORY, "1.0")

    again = client.scan(REPOSITORY, "1.0", known_state=first.index_state)
    assert again.reindexed is False
    assert clair.calls["index"] == 1
    assert again.findings == first.findings

    clair.state = "wharf-test-state-2"
    upgraded = client.scan(REPOSITORY, "1.0", known_state=first.index_state)
    assert upgraded.reindexed is True and upgraded.index_state == "wharf-test-state-2"
    assert clair.calls["index"] == 2


def test_a_known_state_without_a_report_in_clair_indexes_again(wired: Registry, clair: ClairServer) -> None:
    report = client_of(clair).scan(REPOSITORY, "1.0", known_state=clair.state)

    assert report.reindexed is True
    assert clair.calls["index"] == 1


# Faults: each one a clear reason, never an empty report.


@pytest.mark.parametrize(
    ("operation", "fault", "reason", "transient"),
    [
        ("index_state", "500", "answered GET /indexer/api/v1/index_state with 500: index_state: canned failure", True),
        ("index", "500", "answered POST /indexer/api/v1/index_report with 500: index: canned failure", True),
        ("index_report", "malformed", "answered an index report that is not JSON", False),
        ("vulnerability_report", "500", "with 500: vulnerability_report: canned failure", True),
        ("vulnerability_report", "malformed", "answered a vulnerability report that is not JSON", False),
        ("vulnerability_report", "202", "has not loaded its vulnerability database yet", True),
    ],
)
def test_a_bad_answer_fails_the_scan_with_the_reason(
    wired: Registry, clair: ClairServer, operation: str, fault: str, reason: str, transient: bool
) -> None:
    clair.faults[operation] = fault

    error = fails(client_of(clair), transient=transient)

    assert reason in error.message
    assert error.message.startswith("Clair")


def test_an_index_that_never_finishes_fails_at_the_deadline(wired: Registry, clair: ClairServer) -> None:
    clair.outcome = "never"
    started = time.monotonic()

    error = fails(client_of(clair, index_deadline=1), transient=True)

    assert time.monotonic() - started < 5
    assert "did not finish indexing sha256:" in error.message
    assert "within 1 s (last state: FetchLayers)" in error.message


def test_an_index_error_fails_with_clairs_reason(wired: Registry, clair: ClairServer) -> None:
    clair.outcome = "error"

    error = fails(client_of(clair), transient=False)

    assert "Clair could not index sha256:" in error.message
    assert error.message.endswith("canned failure: the layers could not be read")
    assert clair.calls["vulnerability_report"] == 0


def test_a_clair_that_is_down_or_slow_fails_with_the_reason(wired: Registry, clair: ClairServer) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = ClairClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}", timeout=2)
    error = fails(down, transient=True)
    assert error.message == f"Clair at http://127.0.0.1:{port} did not answer: 127.0.0.1:{port}: connection refused"

    clair.faults["index_state"] = "slow"
    error = fails(client_of(clair, timeout=0.5), transient=True)
    assert "did not answer" in error.message and "timed out" in error.message


def test_check_says_whether_both_services_answer(clair: ClairServer) -> None:
    assert client_of(clair).check() == f"index state {clair.state}; the matcher is ready"

    clair.faults["vulnerability_report"] = "202"
    assert client_of(clair).check().endswith("the matcher has not loaded its vulnerability database yet")

    clair.faults["index_state"] = "500"
    with pytest.raises(ClairError, match="index_state with 500"):
        client_of(clair).check()


# PSK authentication.


def test_clair_with_psk_refuses_no_key_a_wrong_key_and_a_wrong_issuer_and_accepts_the_right_one(
    wired: Registry, clair: ClairServer
) -> None:
    psk = clair.require_psk(b"a shared secret of the site", "clairctl", "wharf")

    error = fails(client_of(clair), transient=False)
    assert "requires PSK authentication and no PSK is set" in error.message

    wrong = base64.b64encode(b"another secret").decode()
    error = fails(client_of(clair, psk=wrong), transient=False)
    assert "refused the PSK token" in error.message and "'clairctl' among its auth.psk.iss" in error.message
    error = fails(client_of(clair, psk=psk, issuer="someone"), transient=False)
    assert "'someone' among its auth.psk.iss" in error.message
    assert clair.refused == 3
    assert clair.calls["index"] == 0

    report = client_of(clair, psk=psk, issuer="wharf").scan(REPOSITORY, "1.0")
    assert len(report.findings) == 6
    assert clair.refused == 3


def test_psk_tokens_are_hs256_with_the_decoded_key_and_a_minute_each_side() -> None:
    token = psk_token(b"key bytes", "clairctl", now=1_000_000)

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, b"key bytes", algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": "clairctl", "iat": 1_000_000, "nbf": 999_940, "exp": 1_000_060}


def test_a_psk_that_is_not_base64_is_refused_at_once() -> None:
    with pytest.raises(Invalid, match="not base64"):
        ClairClient("http://127.0.0.1:1", "http://127.0.0.1:1", psk="not base64!")


# The mapping of reports other than the fixture's.


def test_advisory_ids_and_fixed_versions_are_read_from_clairs_spellings() -> None:
    assert advisory_id("RHSA-2021:3798: openssl security and bug fix update (Moderate)") == "RHSA-2021:3798"
    assert advisory_id("CVE-2021-3711 on Ubuntu 20.04 LTS (focal) - high.") == "CVE-2021-3711"
    assert advisory_id("DSA-5139-1 openssl") == "DSA-5139-1"
    assert advisory_id("GHSA-jfh8-c2jp-5v3q") == "GHSA-jfh8-c2jp-5v3q"
    assert fixed_version("1.2.3-1") == "1.2.3-1"
    assert fixed_version("introduced=0&fixed=2.31.0") == "2.31.0"
    assert fixed_version("lastAffected=2.30.0") == ""


def test_a_language_package_takes_its_ecosystem_namespace() -> None:
    report = {
        "manifest_hash": "sha256:" + "0" * 64,
        "packages": {"5": {"id": "5", "name": "requests", "version": "2.25.1", "kind": "binary"}},
        "distributions": {},
        "environments": {"5": [{"package_db": "python:usr/lib/python3/dist-packages", "introduced_in": ""}]},
        "vulnerabilities": {
            "9": {
                "id": "9",
                "updater": "osv/pypi",
                "name": "GHSA-j8r2-6x86-q33q",
                "normalized_severity": "Medium",
                "fixed_in_version": "fixed=2.31.0",
                "links": "https://osv.dev/vulnerability/GHSA-j8r2-6x86-q33q",
            }
        },
        "package_vulnerabilities": {"5": ["9"]},
    }

    mapped = findings_from(report)

    assert mapped.distribution == ""
    assert mapped.package_count == 1
    [finding] = mapped.findings
    assert (finding.vulnerability, finding.package, finding.fixed_version, finding.severity, finding.namespace) == (
        "GHSA-j8r2-6x86-q33q",
        "requests",
        "2.31.0",
        "Medium",
        "pypi",
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda report: report.pop("packages"), "'packages' is missing"),
        (lambda report: report.update(vulnerabilities=[]), "'vulnerabilities' is not an object"),
        (lambda report: report["package_vulnerabilities"].update({"99": ["100"]}), "packages['99'] is named but"),
        (lambda report: report["package_vulnerabilities"].update({"10": ["404"]}), "vulnerabilities['404'] is named"),
        (lambda report: report["package_vulnerabilities"].update({"10": "100"}), "is not a list"),
    ],
)
def test_a_report_not_shaped_as_the_schema_is_refused_with_the_reason(
    vulnerable_image: BuiltImage, change: Any, reason: str
) -> None:
    report = canned_report(vulnerable_image)
    change(report)

    with pytest.raises(MalformedReport) as caught:
        findings_from(report)

    assert caught.value.message.startswith("Clair's vulnerability report is malformed: ")
    assert reason in caught.value.message
