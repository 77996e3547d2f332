"""The built-in scanner served as a Harbor scanner adapter (/scanner/api/v1/), in process against a real registry:
who may call it, the answers to bad requests in the spec's error shape, and a scan's life (302 + Refresh-After while
its job waits, the report when it ran, 500 with the reason when it failed), the caller's credentials never kept."""

from __future__ import annotations

import datetime
import json
from dataclasses import astuple
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.jobs import run_job
from portal.core.models import AuditEvent, Job, JobState, User
from portal.core.services import create_token
from registries.client import RegistryClient
from registries.token import parse_scope, system_token
from scanning import adapter_pull, indexer, matcher, scanner
from scanning.harbor_adapter import (
    ERROR,
    HARBOR_REPORT_V10,
    METADATA_V10,
    METADATA_V11,
    SCAN_REQUEST_V10,
    SCAN_RESPONSE,
    VULNERABILITY_REPORT,
    VulnerabilityReport,
)
from scanning.models import AdapterScan, IndexedLayer, ScanState
from tests.integration.registry import Registry
from tests.scanning.image_builder import BuiltImage, push_built_image
from tests.scanning.scanned_images import FINDINGS

pytestmark = pytest.mark.integration

BASE = "/scanner/api/v1"
MISSING = "sha256:" + "0" * 64


@pytest.fixture
def admin_token(portal_admin: User) -> str:
    return "Bearer " + create_token(Actor(portal_admin), "harbor")[1]


@pytest.fixture
def caller(admin_token: str) -> Client:
    """Harbor, as a portal administrator's API token."""
    return Client(HTTP_AUTHORIZATION=admin_token)


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    """The test registry listens on 127.0.0.1: the administrator allows it."""
    settings.SCANNER_ADAPTER_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def pull_authorization(repository: str) -> str:
    """What Harbor sends for its registry: a bearer token the registry accepts for pulling the repository."""
    return "Bearer " + system_token(parse_scope(f"repository:{repository}:pull"), 600)


def scan_request(registry_url: str, digest: str, **artifact: str) -> dict:
    """A scan request of web/app@digest as Harbor sends it (`artifact` replaces fields of the artifact)."""
    return {
        "registry": {"url": registry_url, "authorization": pull_authorization("web/app")},
        "artifact": {
            "repository": "web/app",
            "digest": digest,
            "tag": "1.0",
            "mime_type": "application/vnd.oci.image.manifest.v1+json",
            **artifact,
        },
    }


def post_scan(client: Client, body: Any, content_type: str = SCAN_REQUEST_V10) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"{BASE}/scan", data=data, content_type=content_type)


def error_of(response: Any) -> str:
    assert response["Content-Type"] == ERROR, response.content
    return response.json()["error"]["message"]


# --- metadata and who may call ---------------------------------------------------------------------------


def test_metadata_names_the_scanner_what_it_reads_and_the_reports_it_makes(caller: Client) -> None:
    response = caller.get(f"{BASE}/metadata")

    assert response.status_code == 200
    assert response["Content-Type"] == METADATA_V10
    body = response.json()
    assert body["scanner"]["name"] == "Wharf"
    [capability] = body["capabilities"]
    assert capability["type"] == "vulnerability"
    assert set(capability["consumes_mime_types"]) == {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
    assert VULNERABILITY_REPORT in capability["produces_mime_types"]
    assert HARBOR_REPORT_V10 in capability["produces_mime_types"]
    assert body["properties"]["harbor.scanner-adapter/scanner-type"] == "os-package-vulnerability"
    # A v1.2 client asks for the metadata's version 1.1.
    assert caller.get(f"{BASE}/metadata", HTTP_ACCEPT=METADATA_V11)["Content-Type"] == METADATA_V11


def test_a_caller_without_credentials_or_with_a_bad_token_is_refused_with_401(db: Any) -> None:
    anonymous = Client().get(f"{BASE}/metadata")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert error_of(anonymous)

    forged = Client(HTTP_AUTHORIZATION="Bearer wharf_not-a-token").post(
        f"{BASE}/scan", data="{}", content_type=SCAN_REQUEST_V10
    )
    assert forged.status_code == 401
    assert "token" in error_of(forged)


def test_a_user_who_is_not_a_portal_admin_is_refused_with_403(make_user: Any) -> None:
    developer = make_user("dev")
    client = Client(HTTP_AUTHORIZATION="Bearer " + create_token(Actor(developer), "harbor")[1])

    for response in (
        client.get(f"{BASE}/metadata"),
        post_scan(client, scan_request("https://registry.example", MISSING)),
        client.get(f"{BASE}/scan/3fa85f64-5717-4562-b3fc-2c963f66afa6/report"),
    ):
        assert response.status_code == 403
        assert "administrators" in error_of(response)
    assert not AdapterScan.objects.exists()


# --- bad requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ("{}", "text/plain", 415, "must be a scan request"),
        ("{not json", SCAN_REQUEST_V10, 400, "not JSON"),
        ("[1, 2]", SCAN_REQUEST_V10, 400, "must be a JSON object"),
        ({"registry": "https://r.example", "artifact": {}}, SCAN_REQUEST_V10, 400, "registry must be a JSON object"),
        ({"registry": {"url": 5}, "artifact": {}}, SCAN_REQUEST_V10, 400, "registry.url must be a string"),
        ({"registry": {"url": "https://r.example"}, "artifact": {"digest": MISSING}}, "application/json", 400,
         "artifact.repository is required"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_scan_request_is_refused(
    caller: Client, body: Any, content_type: str, status: int, says: str
) -> None:
    response = post_scan(caller, body, content_type)

    assert response.status_code == status, response.content
    assert says in error_of(response)
    assert not AdapterScan.objects.exists()


@pytest.mark.parametrize(
    ("registry_url", "artifact", "field"),
    [
        ("ftp://registry.example", {}, "'ftp://' is not supported"),
        ("registry.example", {}, "has no scheme"),
        ("https://registry.example", {"digest": "latest"}, "is not a digest"),
        ("https://registry.example", {"repository": "Web/App"}, "is not a repository name"),
        ("https://registry.example", {"repository": "a" * 256}, "is not a repository name"),
        ("https://registry.example/" + "a" * 1000, {}, "longer than 1000 characters"),
        ("https://registry.example", {"mime_type": "application/vnd.cncf.helm.config.v1+json"}, "not an image"),
        # Loopback, private and link-local addresses are refused unless the administrator allowed them.
        ("http://127.0.0.1:5000", {}, "may not connect to 127.0.0.1"),
        ("http://localhost:5000", {}, "may not connect to localhost"),
        ("https://169.254.169.254", {}, "may not connect to 169.254.169.254"),
        ("https://[::1]:5000", {}, "may not connect to ::1"),
        ("https://10.1.2.3", {}, "may not connect to 10.1.2.3"),
    ],
)  # fmt: skip
def test_a_field_the_scanner_cannot_use_is_refused_with_422(
    caller: Client, registry_url: str, artifact: dict, field: str
) -> None:
    response = post_scan(caller, scan_request(registry_url, **{"digest": MISSING, **artifact}))

    assert response.status_code == 422, response.content
    assert field in error_of(response)
    assert not AdapterScan.objects.exists()


def test_a_scan_for_an_sbom_only_is_not_a_capability_of_this_scanner(caller: Client) -> None:
    body = {**scan_request("https://registry.example", MISSING), "enabled_capabilities": [{"type": "sbom"}]}

    response = post_scan(caller, body, "application/vnd.scanner.adapter.scan.request+json; version=1.1")

    assert response.status_code == 501
    assert "only the 'vulnerability' capability" in error_of(response)


def test_the_report_of_an_unknown_scan_is_404(caller: Client) -> None:
    for scan_id in ("3fa85f64-5717-4562-b3fc-2c963f66afa6", "not-a-uuid"):
        response = caller.get(f"{BASE}/scan/{scan_id}/report")
        assert response.status_code == 404
        assert "no scan has the id" in error_of(response)


# --- a scan's life ---------------------------------------------------------------------------------------


@pytest.fixture
def image(wired: Registry, vulnerable_image: BuiltImage, loaded: None, loopback_allowed: None) -> str:
    """The vulnerable image in the real registry as web/app:1.0 (the fixture feeds loaded); its digest."""
    return push_built_image(wired.url, "web/app", "1.0", vulnerable_image)


def test_a_scan_answers_302_while_it_waits_then_the_report_in_the_media_type_asked_for(
    caller: Client, wired: Registry, image: str
) -> None:
    accepted = post_scan(caller, scan_request(wired.url, image))
    assert accepted.status_code == 202, accepted.content
    assert accepted["Content-Type"] == SCAN_RESPONSE
    scan = AdapterScan.objects.get(uuid=accepted.json()["id"])
    report_url = f"{BASE}/scan/{scan.uuid}/report"

    # Queued: ask again later. The caller's credentials are kept encrypted, and only in the scan's row.
    waiting = caller.get(report_url, HTTP_ACCEPT=VULNERABILITY_REPORT)
    assert waiting.status_code == 302
    assert waiting["Refresh-After"] == "2"
    assert "Location" not in waiting
    assert scan.authorization and "Bearer" not in scan.authorization
    assert scan.job.parameters == {"adapter_scan": scan.pk}
    [event] = AuditEvent.objects.filter(resource_type="scan", action="start")
    assert event.resource_name == f"{wired.url}/web/app@{image}" and "Bearer" not in json.dumps(event.detail)

    job = run_job(scan.job_id)
    assert job.state == JobState.SUCCEEDED, job.log

    done = caller.get(report_url, HTTP_ACCEPT=VULNERABILITY_REPORT)
    assert done.status_code == 200
    assert done["Content-Type"] == VULNERABILITY_REPORT
    body = json.loads(done.content)
    assert body["artifact"] == {
        "repository": "web/app",
        "digest": image,
        "tag": "1.0",
        "mime_type": "application/vnd.oci.image.manifest.v1+json",
    }
    assert body["severity"] == "Critical"
    rows = {(v["id"], v["package"], v["version"], v["fix_version"], v["severity"]) for v in body["vulnerabilities"]}
    assert rows == FINDINGS
    # What the built-in scanner finds in the same image, field by field, is what the report carries.
    _, index = scanner.index_reference(RegistryClient(), "web/app", image)
    expected = matcher.match(index.distribution, index.packages)
    assert [astuple(f) for f in VulnerabilityReport.from_dict(body).findings] == [astuple(f) for f in expected]
    # Harbor's native report type is the same report.
    native = caller.get(report_url, HTTP_ACCEPT=HARBOR_REPORT_V10)
    assert native["Content-Type"] == HARBOR_REPORT_V10 and json.loads(native.content) == body
    # A report type this scanner does not make.
    raw = caller.get(report_url, HTTP_ACCEPT="application/vnd.scanner.adapter.vuln.report.raw")
    assert raw.status_code == 501 and "makes no" in error_of(raw)

    scan.refresh_from_db()
    assert scan.state == ScanState.SUCCEEDED and scan.finished is not None
    assert scan.authorization == "", "the caller's credentials outlived the job"


def test_a_scan_that_cannot_read_the_image_fails_with_the_reason_and_the_report_is_500(
    caller: Client, wired: Registry, image: str
) -> None:
    accepted = post_scan(caller, scan_request(wired.url, MISSING))
    scan = AdapterScan.objects.get(uuid=accepted.json()["id"])

    job = run_job(scan.job_id)

    assert job.state == JobState.FAILED
    failed = caller.get(f"{BASE}/scan/{scan.uuid}/report", HTTP_ACCEPT=VULNERABILITY_REPORT)
    assert failed.status_code == 500
    assert error_of(failed) == f"web/app:{MISSING} is not in the registry"
    scan.refresh_from_db()
    assert scan.state == ScanState.FAILED and scan.authorization == ""


def test_a_refused_pull_token_fails_the_scan_saying_so(caller: Client, wired: Registry, image: str) -> None:
    body = scan_request(wired.url, image)
    body["registry"]["authorization"] = pull_authorization("other/repository")
    scan = AdapterScan.objects.get(uuid=post_scan(caller, body).json()["id"])

    job = run_job(scan.job_id)

    assert job.state == JobState.FAILED, job.log
    scan.refresh_from_db()
    assert scan.state == ScanState.FAILED
    assert "401" in scan.error or "refused" in scan.error, scan.error


def test_the_pull_never_connects_to_an_address_the_administrator_did_not_allow(
    wired: Registry, image: str, settings: Any
) -> None:
    # Past the request's check (a name may resolve anywhere): the connection itself is refused.
    settings.SCANNER_ADAPTER_ALLOWED_NETWORKS = []
    client = adapter_pull.GuardedRegistryClient(wired.url, adapter_pull.auth_for(pull_authorization("web/app")))

    with pytest.raises(adapter_pull.AddressNotAllowed, match=r"may not connect to 127\.0\.0\.1"):
        client.get_manifest("web/app", image)

    settings.SCANNER_ADAPTER_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert client.get_manifest("web/app", image) is not None


def test_a_stopped_scan_is_failed_and_forgets_the_credentials(caller: Client, wired: Registry, image: str) -> None:
    from portal.core.jobs import request_stop

    scan = AdapterScan.objects.get(uuid=post_scan(caller, scan_request(wired.url, image)).json()["id"])

    request_stop(Actor(User.objects.get(username="root-admin")), Job.objects.get(pk=scan.job_id))

    scan.refresh_from_db()
    assert scan.state == ScanState.FAILED and scan.authorization == ""
    assert caller.get(f"{BASE}/scan/{scan.uuid}/report").status_code == 500


def test_layers_from_a_registry_a_caller_named_are_stored_only_when_their_bytes_were_checked(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The indexer checks sha256 layers against their digest; a layer of another digest is whatever the registry sent,
    # and storing its index would hand it to every later scan of that digest.
    checked, unchecked = "sha256:" + "1" * 64, "sha512:" + "2" * 128
    monkeypatch.setattr(indexer, "resolve_image", lambda *args: indexer.ImageLayers(MISSING, (checked, unchecked)))
    monkeypatch.setattr(indexer, "read_layer", lambda client, repository, digest: indexer.LayerIndex(digest))

    scanner.index_reference(None, "web/app", MISSING, trusted=False)  # type: ignore[arg-type]

    assert set(IndexedLayer.objects.values_list("digest", flat=True)) == {checked}
    scanner.index_reference(None, "web/app", MISSING)  # type: ignore[arg-type]
    assert set(IndexedLayer.objects.values_list("digest", flat=True)) == {checked, unchecked}


def test_scans_that_ended_longer_ago_than_jobs_are_kept_are_forgotten_by_the_next_request(
    caller: Client, settings: Any
) -> None:
    old = AdapterScan.objects.create(registry_url="https://r.example", repository="a/b", digest=MISSING)
    AdapterScan.objects.filter(pk=old.pk).update(
        finished=timezone.now() - datetime.timedelta(days=settings.JOB_RETENTION_DAYS, hours=1)
    )
    recent = AdapterScan.objects.create(
        registry_url="https://r.example", repository="a/b", digest=MISSING, finished=timezone.now()
    )

    assert post_scan(caller, scan_request("https://registry.example", MISSING)).status_code == 202

    assert not AdapterScan.objects.filter(pk=old.pk).exists()
    assert AdapterScan.objects.filter(pk=recent.pk).exists()
