"""The Harbor adapter client against a tiny stand-in adapter on loopback that answers as each test tells it: spec
v1.1 and v1.2 adapters, 302 + Refresh-After honoured, and every bad answer (malformed JSON, a 500, a report that
never becomes ready, the wrong media type, no answer at all) a domain error that says what went wrong."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scanning.harbor_adapter import (
    ERROR,
    HARBOR_REPORT_V10,
    METADATA_V10,
    METADATA_V11,
    SCAN_REQUEST_V10,
    SCAN_RESPONSE,
    VULNERABILITY_REPORT,
    vulnerability_item,
)
from scanning.harbor_adapter_client import AdapterError, HarborAdapterClient, ReportNotReady, ScanFailed
from scanning.matcher import FIXED, NO_FIX, Finding

SCAN_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
REPORT_PATH = f"/api/v1/scan/{SCAN_ID}/report"
DIGEST = "sha256:" + "a" * 64
TOKEN = "Bearer adapter-secret"

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class StandIn:
    """A loopback HTTP server answering each (method, path) with the function the test set."""

    routes: dict[tuple[str, str], Callable[[Seen], Answer]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = Seen(
            handler.command, handler.path, dict(handler.headers), handler.rfile.read(length), time.monotonic()
        )
        self.seen.append(request)
        route = self.routes.get((handler.command, handler.path))
        status, headers, body = route(request) if route else (404, {}, b"")
        # A client that gave up (the timeout test) has closed the connection: nobody is left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    adapter = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            adapter.answer(self)

        def do_POST(self) -> None:
            adapter.answer(self)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    adapter.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield adapter
    server.shutdown()
    server.server_close()


def as_json(status: int, data: object, content_type: str, **headers: str) -> Callable[[Seen], Answer]:
    return lambda request: (status, {"Content-Type": content_type, **headers}, json.dumps(data).encode())


def metadata(*produces: str) -> dict:
    return {
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.1"},
        "capabilities": [
            {
                "consumes_mime_types": ["application/vnd.docker.distribution.manifest.v2+json"],
                "produces_mime_types": list(produces),
            }
        ],
        "properties": {"harbor.scanner-adapter/scanner-type": "os-package-vulnerability"},
    }


FINDINGS = [
    Finding(
        "CVE-2024-0001", "openssl", "3.0.11-1", "3.0.13-1", "Critical", FIXED,
        namespace="debian:12", source_package="openssl", path="var/lib/dpkg/status",
        description="A world-burning problem.", links=("https://security-tracker.debian.org/tracker/CVE-2024-0001",),
        cvss_score=9.8, cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    ),
    Finding(
        "CVE-2019-0002", "zlib1g", "1.2.13", "", "Low", NO_FIX, cvss_score=5.0, cvss_vector="AV:N/AC:L/Au:N/C:N/I:N/A:P"
    ),
    Finding("CVE-2020-0003", "libc6", "2.36-9", "", "Unknown", NO_FIX),
]  # fmt: skip


def report(findings: list[Finding] = FINDINGS) -> dict:
    return {
        "generated_at": "2026-12-01T14:00:00.123Z",
        "artifact": {"repository": "web/app", "digest": DIGEST, "mime_type": HARBOR_REPORT_V10},
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.1"},
        "severity": "Critical",
        "vulnerabilities": [vulnerability_item(finding) for finding in findings],
    }


def client_of(stand_in: StandIn, **options: object) -> HarborAdapterClient:
    return HarborAdapterClient(stand_in.url, TOKEN, **options)  # type: ignore[arg-type]


def serve_scan(stand_in: StandIn) -> None:
    stand_in.routes[("POST", "/api/v1/scan")] = as_json(202, {"id": SCAN_ID}, SCAN_RESPONSE)


# --- v1.1 and v1.2 adapters ------------------------------------------------------------------------------


def test_a_v12_adapter_is_asked_for_the_generic_report_and_its_findings_are_ours_field_by_field(
    stand_in: StandIn,
) -> None:
    stand_in.routes[("GET", "/api/v1/metadata")] = as_json(
        200, metadata(HARBOR_REPORT_V10, VULNERABILITY_REPORT), METADATA_V11
    )
    serve_scan(stand_in)
    stand_in.routes[("GET", REPORT_PATH)] = as_json(200, report(), VULNERABILITY_REPORT)
    client = client_of(stand_in)

    described = client.metadata()
    scan_id = client.scan("https://registry.example", "Basic cm9ib3Q6cHc=", "web/app", DIGEST, tag="1.0")
    result = client.report(scan_id, deadline=10)

    assert described.scanner.name == "Trivy" and client.report_type == VULNERABILITY_REPORT
    assert scan_id == SCAN_ID
    assert [astuple(finding) for finding in result.findings] == [astuple(finding) for finding in FINDINGS]
    assert result.scanner.version == "0.50.1" and result.media_type == VULNERABILITY_REPORT
    assert result.generated_at.isoformat() == "2026-12-01T14:00:00.123000+00:00"
    posted = next(request for request in stand_in.seen if request.method == "POST")
    assert posted.headers["Content-Type"] == SCAN_REQUEST_V10
    assert json.loads(posted.body) == {
        "registry": {"url": "https://registry.example", "authorization": "Basic cm9ib3Q6cHc="},
        "artifact": {
            "repository": "web/app",
            "digest": DIGEST,
            "tag": "1.0",
            "mime_type": "application/vnd.docker.distribution.manifest.v2+json",
        },
    }
    assert all(request.headers["Authorization"] == TOKEN for request in stand_in.seen)
    assert stand_in.seen[-1].headers["Accept"] == VULNERABILITY_REPORT


def test_a_v11_adapter_is_asked_for_its_native_report_whose_scores_it_writes_the_v11_way(stand_in: StandIn) -> None:
    stand_in.routes[("GET", "/api/v1/metadata")] = as_json(200, metadata(HARBOR_REPORT_V10), METADATA_V10)
    item = {
        "id": "CVE-2024-0001",
        "package": "openssl",
        "version": "3.0.11-1",
        "fix_version": "3.0.13-1",
        "severity": "HIGH",
        "cve3_score": "7.5",
        "cvss3_vector": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
    }
    stand_in.routes[("GET", REPORT_PATH)] = as_json(200, {"vulnerabilities": [item]}, HARBOR_REPORT_V10)
    client = client_of(stand_in)

    client.metadata()
    [finding] = client.report(SCAN_ID).findings

    assert client.report_type == HARBOR_REPORT_V10
    assert stand_in.seen[-1].headers["Accept"] == HARBOR_REPORT_V10
    assert (finding.severity, finding.status, finding.cvss_score) == ("High", FIXED, 7.5)
    assert finding.cvss_vector == item["cvss3_vector"]


def test_an_adapter_making_no_vulnerability_report_wharf_reads_is_refused(stand_in: StandIn) -> None:
    stand_in.routes[("GET", "/api/v1/metadata")] = as_json(
        200, metadata("application/vnd.security.sbom.report+json; version=1.0"), METADATA_V11
    )

    with pytest.raises(AdapterError, match="makes no vulnerability report Wharf reads"):
        client_of(stand_in).metadata()


# --- waiting ---------------------------------------------------------------------------------------------


def test_the_client_waits_as_refresh_after_says_then_reads_the_report(stand_in: StandIn) -> None:
    polls = iter([302, 302, 200])

    def answer(request: Seen) -> Answer:
        if next(polls) == 302:
            return 302, {"Refresh-After": "1"}, b""
        return 200, {"Content-Type": VULNERABILITY_REPORT}, json.dumps(report()).encode()

    stand_in.routes[("GET", REPORT_PATH)] = answer

    result = client_of(stand_in).report(SCAN_ID, deadline=10)

    assert len(result.findings) == 3
    times = [request.at for request in stand_in.seen]
    assert len(times) == 3
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times)), times


def test_a_report_that_never_becomes_ready_fails_at_the_deadline(stand_in: StandIn) -> None:
    stand_in.routes[("GET", REPORT_PATH)] = lambda request: (302, {"Refresh-After": "1"}, b"")
    started = time.monotonic()

    with pytest.raises(ReportNotReady, match=f"had not made the report of scan {SCAN_ID} within 2.5 s") as failure:
        client_of(stand_in).report(SCAN_ID, deadline=2.5)

    assert time.monotonic() - started < 2.5 + 1
    assert 2 <= len(stand_in.seen) <= 3
    assert not failure.value.transient


# --- bad answers ----------------------------------------------------------------------------------------


def test_a_report_that_is_not_json_fails_saying_so(stand_in: StandIn) -> None:
    stand_in.routes[("GET", REPORT_PATH)] = lambda request: (200, {"Content-Type": VULNERABILITY_REPORT}, b'{"vuln')

    with pytest.raises(AdapterError, match=f"at {stand_in.url}/api/v1 answered GET .* with malformed JSON"):
        client_of(stand_in).report(SCAN_ID)


def test_a_report_that_breaks_the_spec_fails_naming_the_field(stand_in: StandIn) -> None:
    broken = report()
    broken["vulnerabilities"][1]["severity"] = "Severe"
    stand_in.routes[("GET", REPORT_PATH)] = as_json(200, broken, VULNERABILITY_REPORT)

    with pytest.raises(AdapterError, match=r"report.vulnerabilities\[1\].severity is 'Severe'"):
        client_of(stand_in).report(SCAN_ID)


def test_a_failed_scan_is_the_adapters_reason(stand_in: StandIn) -> None:
    stand_in.routes[("GET", REPORT_PATH)] = as_json(500, {"error": {"message": "image has no layers"}}, ERROR)

    with pytest.raises(ScanFailed, match="could not scan the image: image has no layers") as failure:
        client_of(stand_in).report(SCAN_ID)

    assert not failure.value.transient


def test_a_500_to_a_scan_request_fails_with_the_status_and_message(stand_in: StandIn) -> None:
    stand_in.routes[("POST", "/api/v1/scan")] = as_json(500, {"error": {"message": "queue is full"}}, ERROR)

    with pytest.raises(AdapterError, match="answered POST /scan with 500: queue is full"):
        client_of(stand_in).scan("https://registry.example", "", "web/app", DIGEST)


def test_an_adapter_behind_a_failing_proxy_may_be_tried_again(stand_in: StandIn) -> None:
    stand_in.routes[("GET", "/api/v1/metadata")] = lambda request: (503, {"Content-Type": "text/html"}, b"<h1>503</h1>")

    with pytest.raises(AdapterError, match="answered GET /metadata with 503") as failure:
        client_of(stand_in).metadata()

    assert failure.value.transient


def test_a_report_of_the_wrong_media_type_is_refused(stand_in: StandIn) -> None:
    stand_in.routes[("GET", REPORT_PATH)] = lambda request: (200, {"Content-Type": "text/html"}, b"<html>login</html>")

    with pytest.raises(AdapterError, match="with the media type 'text/html', not a vulnerability report"):
        client_of(stand_in).report(SCAN_ID)


def test_refused_credentials_say_so(stand_in: StandIn) -> None:
    stand_in.routes[("GET", "/api/v1/metadata")] = as_json(401, {"error": {"message": "invalid token"}}, ERROR)

    with pytest.raises(AdapterError, match=r"refused the credentials \(401\) for GET /metadata: invalid token"):
        client_of(stand_in).metadata()


def test_an_unknown_scan_id_is_404(stand_in: StandIn) -> None:
    with pytest.raises(AdapterError, match="has no scan with the id"):
        client_of(stand_in).report(SCAN_ID)


# --- no answer ------------------------------------------------------------------------------------------


def test_an_adapter_that_is_not_listening_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(AdapterError, match=f"127.0.0.1:{port}/api/v1 did not answer: .*connection refused") as failure:
        HarborAdapterClient(f"http://127.0.0.1:{port}").metadata()

    assert failure.value.transient


def test_an_adapter_that_does_not_answer_in_time_times_out(stand_in: StandIn) -> None:
    def slow(request: Seen) -> Answer:
        time.sleep(2)
        return 200, {}, b""

    stand_in.routes[("GET", "/api/v1/metadata")] = slow

    with pytest.raises(AdapterError, match=r"did not answer within 0\.5 s") as failure:
        client_of(stand_in, timeout=(1.0, 0.5)).metadata()

    assert failure.value.transient


def test_a_report_request_that_hangs_is_given_up_at_the_deadline_not_the_read_timeout(stand_in: StandIn) -> None:
    def hangs(request: Seen) -> Answer:
        time.sleep(3)
        return 302, {"Refresh-After": "1"}, b""

    stand_in.routes[("GET", REPORT_PATH)] = hangs
    started = time.monotonic()

    with pytest.raises(AdapterError, match=r"did not answer within 1\.5 s"):
        client_of(stand_in, timeout=(5.0, 30.0)).report(SCAN_ID, deadline=1.5)

    assert time.monotonic() - started < 2.5
