"""Scanner registrations and the scans they make, in process: the built-in scanner is registered and the default;
Clair and adapter registrations keep their secrets encrypted; one default at a time; a project may pick another
scanner. A project that picked the Clair stand-in (tests/scanning/clair_server.py) has its image scanned by Clair
over the real registry with a pull token, and stores exactly the findings the built-in scanner makes; every remote
failure fails the scan job with the reason and leaves the image refused as "could not be scanned".
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from portal.core.audit import Actor
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.jobs import run_job
from portal.core.models import AuditEvent, JobState, User
from portal.core.secrets import decrypt
from projects.models import Project
from projects.policy import check
from scanning.models import ImageScan, ScannerKind, ScannerRegistration, ScanState
from scanning.services import scanners
from scanning.services.scans import start_rematch
from tests.integration.registry import Registry
from tests.scanning.clair_server import ClairServer
from tests.scanning.image_builder import BuiltImage
from tests.scanning.scanned_images import FINDINGS, findings, pushed, scanned
from tests.scanning.test_clair import canned_report

PSK = base64.b64encode(b"a shared secret of clair").decode()


@pytest.fixture
def admin(portal_admin: User) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


def clair_registration(admin: Actor, url: str, **data: Any) -> ScannerRegistration:
    return scanners.create_scanner(admin, {"name": "clair", "kind": "clair", "indexer_url": url, **data})


# --- registrations ---------------------------------------------------------------------------------------


def test_the_built_in_scanner_is_registered_as_the_default_and_cannot_be_deleted(db: Any, admin: Actor) -> None:
    builtin = scanners.default_scanner()
    assert (builtin.name, builtin.kind, builtin.is_default) == ("wharf", ScannerKind.BUILTIN, True)
    with pytest.raises(Conflict, match="built-in scanner cannot be deleted"):
        scanners.delete_scanner(admin, builtin)
    with pytest.raises(Invalid, match="default scanner cannot be disabled"):
        scanners.update_scanner(admin, builtin, {"enabled": False})
    with pytest.raises(Invalid, match="no address or secrets"):
        scanners.update_scanner(admin, builtin, {"adapter_url": "http://127.0.0.1:1"})
    # Gone all the same (a flushed database): it comes back, as the default.
    ScannerRegistration.objects.all().delete()
    assert scanners.default_scanner().kind == ScannerKind.BUILTIN and scanners.default_scanner().is_default


def test_only_portal_admins_manage_scanners(db: Any, make_user: Any) -> None:
    someone = Actor(make_user("someone"), "127.0.0.1")
    with pytest.raises(Forbidden):
        scanners.create_scanner(someone, {"name": "x", "kind": "harbor_adapter", "adapter_url": "http://127.0.0.1:9"})
    with pytest.raises(Forbidden):
        scanners.make_default(someone, scanners.default_scanner())


def test_secrets_are_encrypted_kept_when_not_given_and_dropped_with_the_kind_that_needs_them(
    db: Any, admin: Actor
) -> None:
    clair = clair_registration(admin, "http://127.0.0.1:6060", psk=PSK, psk_issuer="wharf")
    assert clair.psk != PSK and decrypt(clair.psk) == PSK
    adapter = scanners.create_scanner(
        admin,
        {
            "name": "trivy",
            "kind": "harbor_adapter",
            "adapter_url": "https://trivy.example:8443/",
            "authorization": "Bearer x",
        },
    )
    assert adapter.adapter_url == "https://trivy.example:8443" and decrypt(adapter.authorization) == "Bearer x"
    scanners.update_scanner(admin, adapter, {"description": "Trivy", "authorization": ""})
    assert decrypt(ScannerRegistration.objects.get(name="trivy").authorization) == "Bearer x"
    scanners.update_scanner(admin, adapter, {"clear_authorization": True})
    assert ScannerRegistration.objects.get(name="trivy").authorization == ""
    assert not any("Bearer x" in str(event.detail) for event in AuditEvent.objects.all())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Bad Name", "kind": "clair", "indexer_url": "http://127.0.0.1:1"}, "name"),
        ({"name": "c", "kind": "grype", "indexer_url": "http://127.0.0.1:1"}, "kind"),
        ({"name": "c", "kind": "builtin"}, "kind"),
        ({"name": "c", "kind": "clair"}, "indexer_url"),
        ({"name": "c", "kind": "clair", "indexer_url": "ftp://x"}, "indexer_url"),
        ({"name": "c", "kind": "clair", "indexer_url": "http://127.0.0.1:1", "psk": "not base64!"}, "psk"),
        ({"name": "c", "kind": "harbor_adapter"}, "adapter_url"),
        (
            {"name": "c", "kind": "harbor_adapter", "adapter_url": "http://a", "enabled": False, "is_default": True},
            "enabled",
        ),
        ({"name": "c", "kind": "harbor_adapter", "adapter_url": "http://a", "authorization": "a\nb"}, "authorization"),
    ],
)
def test_bad_registrations_are_refused_on_the_field(db: Any, admin: Actor, data: dict, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        scanners.create_scanner(admin, data)
    assert field in caught.value.errors
    assert list(ScannerRegistration.objects.values_list("name", flat=True)) == ["wharf"]


def test_one_default_at_a_time_and_the_default_is_neither_deleted_nor_disabled(db: Any, admin: Actor) -> None:
    clair = clair_registration(admin, "http://127.0.0.1:6060")
    scanners.make_default(admin, clair)
    assert list(ScannerRegistration.objects.filter(is_default=True)) == [clair]
    with pytest.raises(Conflict, match="default scanner"):
        scanners.delete_scanner(admin, clair)
    with pytest.raises(Invalid):
        scanners.update_scanner(admin, clair, {"enabled": False})
    with pytest.raises(Conflict):
        clair_registration(admin, "http://127.0.0.1:6061")
    scanners.make_default(admin, scanners.builtin_scanner())
    scanners.update_scanner(admin, clair, {"enabled": False})
    with pytest.raises(Invalid, match="disabled"):
        scanners.make_default(admin, clair)
    scanners.delete_scanner(admin, clair)
    assert ScannerRegistration.objects.get().kind == ScannerKind.BUILTIN


def test_a_project_picks_an_enabled_scanner_and_falls_back_to_the_default(
    db: Any, admin: Actor, make_user: Any
) -> None:
    web = Project.objects.create(name="web")
    clair = clair_registration(admin, "http://127.0.0.1:6060")
    with pytest.raises(Forbidden):
        scanners.set_project_scanner(Actor(make_user("dev"), "127.0.0.1"), web, clair)
    scanners.set_project_scanner(admin, web, clair)
    assert scanners.scanner_for_repository("web/app") == clair
    assert scanners.scanner_for_repository("other/app").kind == ScannerKind.BUILTIN
    # Disabled, it scans nothing: the project's images go to the default until it is enabled again.
    scanners.update_scanner(admin, clair, {"enabled": False})
    assert scanners.scanner_for_project(web).kind == ScannerKind.BUILTIN
    with pytest.raises(Invalid):
        scanners.set_project_scanner(admin, web, clair)
    scanners.set_project_scanner(admin, web, None)
    assert scanners.project_choice(web) is None


# --- scans by Clair --------------------------------------------------------------------------------------


@pytest.fixture
def clair(wired: Registry, vulnerable_image: BuiltImage, web: Project) -> Iterator[ClairServer]:
    """The Clair stand-in with the canned report of the fixture image (the digest the registry gives it)."""
    server = ClairServer()
    server.reports[vulnerable_image.digest] = canned_report(vulnerable_image)
    yield server
    server.close()


@pytest.fixture
def clair_web(clair: ClairServer, admin: Actor, web: Project) -> ScannerRegistration:
    """Project web scans with the Clair stand-in."""
    registration = clair_registration(admin, clair.url)
    scanners.set_project_scanner(admin, web, registration)
    return registration


def test_a_project_scanned_by_clair_stores_the_findings_the_built_in_scanner_makes(
    clair: ClairServer,
    clair_web: ScannerRegistration,
    web: Project,
    vulnerable_image: BuiltImage,
    admin: Actor,
    loaded: None,
    wired: Registry,
    settings: Any,
) -> None:
    settings.SCANNER_REGISTRY_URL = settings.REGISTRY_URL
    tag = pushed(wired, web, "web/app", "1.0", vulnerable_image)
    by_clair = scanned(tag, admin)

    assert by_clair.state == ScanState.SUCCEEDED, by_clair.error
    assert (by_clair.scanner, by_clair.scanner_name, by_clair.scanner_kind) == (clair_web, "clair", "clair")
    assert findings(by_clair) == FINDINGS
    assert by_clair.summary == {"Critical": 2, "High": 2, "Negligible": 2}
    assert (by_clair.fixable, by_clair.package_count) == (2, 2)
    assert by_clair.distribution == "Debian GNU/Linux 12 (bookworm)"
    assert by_clair.remote_state == clair.state and by_clair.index == {}
    manifest = clair.manifests[vulnerable_image.digest]
    assert all(layer["uri"].startswith(f"{settings.REGISTRY_URL}/v2/web/app/blobs/") for layer in manifest["layers"])
    assert check(web, "web/app", "1.0").reason.startswith("image has 2 critical and 2 high vulnerabilities")

    # Rematching (a database update) leaves Clair's scan alone; a rescan hands Clair its state back (no reindex).
    run_job(start_rematch(admin).pk)
    assert ImageScan.objects.get(pk=by_clair.pk).matched == by_clair.matched
    indexed = clair.calls["index"]
    scanned(tag, admin)
    assert clair.calls["index"] == indexed

    # The built-in scanner, for the same image, finds the very same rows.
    scanners.set_project_scanner(admin, web, None)
    by_wharf = scanned(tag, admin)
    assert by_wharf.scanner_name == "wharf" and findings(by_wharf) == FINDINGS


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"vulnerability_report": "500"}, "with 500"),
        ({"vulnerability_report": "malformed"}, "not JSON"),
        ({"outcome": "never"}, "within"),
        ({"down": True}, "did not answer"),
    ],
)
def test_a_clair_failure_fails_the_job_with_the_reason_and_the_image_is_refused(
    clair: ClairServer,
    clair_web: ScannerRegistration,
    web: Project,
    vulnerable_image: BuiltImage,
    admin: Actor,
    wired: Registry,
    settings: Any,
    fault: dict,
    reason: str,
) -> None:
    settings.CLAIR_INDEX_DEADLINE_SECONDS = 2
    settings.JOB_MAX_ATTEMPTS = 1
    tag = pushed(wired, web, "web/app", "1.0", vulnerable_image)
    if "outcome" in fault:
        clair.outcome = fault.pop("outcome")
    if fault.pop("down", False):
        scanners.update_scanner(admin, clair_web, {"indexer_url": "http://127.0.0.1:9"})
    clair.faults.update(fault)

    failed = scanned(tag, admin)

    assert failed.state == ScanState.FAILED and failed.matched is None
    assert failed.error.startswith("scanner 'clair': ") and reason in failed.error, failed.error
    assert failed.job.state == JobState.FAILED and reason in failed.job.error
    assert failed.scanner_name == "clair" and not failed.findings.exists()
    assert check(web, "web/app", "1.0").reason == f"image could not be scanned: {failed.error}"


def test_a_failed_rescan_withdraws_a_clean_verdict(
    clair: ClairServer,
    clair_web: ScannerRegistration,
    web: Project,
    vulnerable_image: BuiltImage,
    admin: Actor,
    wired: Registry,
    settings: Any,
) -> None:
    settings.JOB_MAX_ATTEMPTS = 1
    clean = canned_report(vulnerable_image)
    clean["vulnerabilities"], clean["package_vulnerabilities"], clean["enrichments"] = {}, {}, {}
    clair.reports[vulnerable_image.digest] = clean
    tag = pushed(wired, web, "web/app", "1.0", vulnerable_image)
    assert scanned(tag, admin).summary == {} and check(web, "web/app", "1.0").allowed

    clair.faults["vulnerability_report"] = "malformed"
    failed = scanned(tag, admin)

    assert failed.state == ScanState.FAILED
    verdict = check(web, "web/app", "1.0")
    assert not verdict.allowed and verdict.reason.startswith("image could not be scanned: scanner 'clair': ")
