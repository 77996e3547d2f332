"""The client of a Harbor pluggable scanner adapter (spec v1.1 and v1.2): Trivy's adapter, or another Wharf.

    client = HarborAdapterClient("https://scanner.example", "Bearer <token>")
    client.metadata()                       # who it is, what it reads and writes (and the report type to ask for)
    scan_id = client.scan(registry_url, "Bearer <pull token>", "web/app", "sha256:...")
    result = client.report(scan_id, deadline=300)   # follows 302 + Refresh-After until the report is made
    result.findings                         # scanning.matcher.Finding, as the built-in scanner gives them

The URL is the one Harbor registers (the API is under `<url>/api/v1`). HTTPS is verified through the trust flow
(portal.core.trust): an unknown certificate is its UntrustedCertificate, to be trusted in the trust dialog.
Every other fault is an AdapterError (a RemoteUnreachable) whose message says what went wrong; `transient` says
whether a later attempt may help (refused, timed out, 502-504), so a scan job retries only those.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from portal.core.addresses import AddressError, parse_url
from portal.core.errors import Invalid, RemoteUnreachable
from scanning.harbor_adapter import (
    DOCKER_MANIFEST,
    HARBOR_REPORT_V10,
    HARBOR_REPORT_V11,
    METADATA_V10,
    METADATA_V11,
    REPORT_TYPES,
    SCAN_REQUEST_V10,
    SCAN_RESPONSE,
    VULNERABILITY_REPORT,
    Artifact,
    MalformedDocument,
    Scanner,
    ScannerAdapterMetadata,
    ScanRequest,
    VulnerabilityReport,
    error_message,
    known_media_type,
)
from scanning.matcher import Finding

API_PATH = "/api/v1"
# Seconds to connect, then to wait for an answer.
TIMEOUT = (5.0, 30.0)
# How long report() waits for a report by default, and between polls when the adapter does not say.
DEFAULT_DEADLINE = 300.0
DEFAULT_REFRESH = 2.0
# The least time a report request is given to be answered, however close the deadline.
MIN_POLL_WAIT = 1.0
# An adapter asking for more than this between polls is asked again sooner.
MAX_REFRESH = 60.0
# The largest answer read: a report of a big image is a few MB; more is not a report.
MAX_BODY = 64 * 1024 * 1024
# The report types asked for, best first: the v1.2 generic one, then the native ones every adapter makes.
PREFERRED_REPORTS = (VULNERABILITY_REPORT, HARBOR_REPORT_V10, HARBOR_REPORT_V11)
# Other media types an adapter's metadata and scan answers come as (some adapters answer plain JSON).
PLAIN_JSON = "application/json"


class AdapterError(RemoteUnreachable):
    """The scanner adapter did not answer as the spec says; the message names the adapter and what was wrong."""


class ScanFailed(AdapterError):
    """The adapter reports that the scan failed (the spec's 500 to a report request)."""


class ReportNotReady(AdapterError):
    """The adapter was still making the report when the deadline passed."""


@dataclass(frozen=True)
class AdapterReport:
    """A report as the scanning app uses it: the findings, who made them, when, and the media type received."""

    scanner: Scanner
    findings: list[Finding]
    generated_at: datetime.datetime
    artifact: Artifact
    media_type: str


class HarborAdapterClient:
    """Calls one scanner adapter. `session` replaces the verifying session (tests); `sleep` and `clock` the waiting."""

    def __init__(
        self,
        url: str,
        authorization: str = "",
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            server = parse_url(url, default_scheme=None, example="https://scanner.example:8443")
        except AddressError as exc:
            raise Invalid(exc.message, {"url": [exc.message]}) from None
        base = url.strip().rstrip("/")
        self.base_url = base if base.endswith(API_PATH) else base + API_PATH
        self.authorization = authorization
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        if session is None:
            if server.scheme == "https":
                from portal.core import trust

                session = trust.session(server.address)
            else:
                session = requests.Session()
        self._session = session
        # What report() asks for; metadata() picks the best the adapter makes.
        self.report_type = HARBOR_REPORT_V10

    def __repr__(self) -> str:
        return f"HarborAdapterClient({self.base_url!r})"

    # Calls.

    def _fail(self, message: str, *, transient: bool = False, kind: type[AdapterError] = AdapterError) -> AdapterError:
        return kind(f"the scanner adapter at {self.base_url} {message}", transient=transient)

    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """One call; its answer read whole (up to MAX_BODY). Network faults are AdapterError (transient)."""
        timeout = timeout or self.timeout
        url = f"{self.base_url}{path}"
        if self.authorization:
            headers = {**headers, "Authorization": self.authorization}
        try:
            response = self._session.request(
                method, url, headers=headers, data=body, timeout=timeout, allow_redirects=False, stream=True
            )
        except requests.RequestException as exc:
            raise self._unreachable(exc, url, timeout) from None
        try:
            content = response.raw.read(MAX_BODY + 1, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._fail(f"broke off its answer to {method} {path}: {exc}", transient=True) from None
        finally:
            response.close()
        if len(content) > MAX_BODY:
            raise self._fail(f"answered {method} {path} with more than {MAX_BODY} bytes")
        response._content = content
        return response

    def _unreachable(self, exc: requests.RequestException, url: str, timeout: tuple[float, float]) -> Exception:
        from portal.core import trust

        translated = trust.translate_request_error(exc, url, timeout[0])
        if isinstance(translated, trust.UntrustedCertificate):
            return translated
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return self._fail(f"did not answer within {round(timeout[1], 1):g} s", transient=True)
        return self._fail(f"did not answer: {translated.message}", transient=True)

    def _refused(self, response: requests.Response, what: str) -> AdapterError:
        """An answer with a status the call does not expect, with the adapter's own message when it gave one."""
        try:
            message = error_message(json.loads(response.content))
        except ValueError:
            message = ""
        detail = message or response.text[:200].strip() or response.reason or ""
        status = response.status_code
        if status in (401, 403):
            return self._fail(f"refused the credentials ({status}) for {what}: {detail}")
        # 500 is the adapter's own failure; 502-504 a proxy's or an outage's, which may pass.
        return self._fail(f"answered {what} with {status}: {detail}", transient=status in (429, 502, 503, 504))

    def _json(self, response: requests.Response, what: str, media_types: tuple[str, ...]) -> Any:
        """The answer's JSON, once its media type is one of those expected."""
        content_type = response.headers.get("Content-Type", "")
        if known_media_type(content_type, media_types) is None:
            expected = ", ".join(media_types)
            raise self._fail(f"answered {what} with the media type '{content_type or 'none'}', not {expected}")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._fail(f"answered {what} with malformed JSON: {exc}") from None

    def _read(self, what: str, reader: Callable[[Any], Any], document: Any) -> Any:
        try:
            return reader(document)
        except MalformedDocument as exc:
            raise self._fail(f"answered {what} with a document the spec does not allow: {exc.message}") from None

    # The API.

    def metadata(self) -> ScannerAdapterMetadata:
        """GET /metadata: the scanner and its capabilities; the report type to ask for is chosen from them."""
        what = "GET /metadata"
        response = self._send("GET", "/metadata", {"Accept": f"{METADATA_V11}, {METADATA_V10}"})
        if response.status_code != 200:
            raise self._refused(response, what)
        document = self._json(response, what, (METADATA_V11, METADATA_V10, PLAIN_JSON))
        described: ScannerAdapterMetadata = self._read(what, ScannerAdapterMetadata.from_dict, document)
        produced = described.report_types()
        usable = [kind for kind in PREFERRED_REPORTS if known_media_type(kind, produced)]
        if not usable:
            raise self._fail(f"makes no vulnerability report Wharf reads (it makes: {', '.join(produced) or 'none'})")
        self.report_type = usable[0]
        return described

    def scan(
        self,
        registry_url: str,
        registry_authorization: str,
        repository: str,
        digest: str,
        mime_type: str = DOCKER_MANIFEST,
        tag: str = "",
    ) -> str:
        """POST /scan: ask for a scan of the image the adapter pulls from `registry_url`; the scan's id."""
        what = "POST /scan"
        request = ScanRequest(registry_url, registry_authorization, Artifact(repository, digest, tag, mime_type))
        body = json.dumps(request.as_dict()).encode()
        headers = {"Content-Type": SCAN_REQUEST_V10, "Accept": SCAN_RESPONSE}
        response = self._send("POST", "/scan", headers, body)
        if response.status_code != 202:
            raise self._refused(response, what)
        document = self._json(response, what, (SCAN_RESPONSE, PLAIN_JSON))
        scan_id = document.get("id") if isinstance(document, dict) else None
        if not isinstance(scan_id, str) or not scan_id.strip():
            raise self._fail(f"answered {what} without a scan id: {response.text[:200]}")
        return scan_id

    def report(self, scan_id: str, deadline: float = DEFAULT_DEADLINE) -> AdapterReport:
        """GET /scan/{id}/report until it is made: 302 is "ask again after Refresh-After seconds", for at most
        `deadline` seconds in all. ScanFailed when the adapter says the scan failed, ReportNotReady at the deadline."""
        ends = self._clock() + deadline
        path = f"/scan/{quote(scan_id, safe='')}/report"
        what = f"GET {path}"
        while True:
            # A poll waits no longer than the deadline leaves (but a moment at least, to be answered at all).
            left = max(ends - self._clock(), MIN_POLL_WAIT)
            timeout = (min(self.timeout[0], left), min(self.timeout[1], left))
            response = self._send("GET", path, {"Accept": self.report_type}, timeout=timeout)
            if response.status_code == 302:
                wait = self._refresh_after(response)
                left = ends - self._clock()
                if left < wait:
                    raise self._fail(
                        f"had not made the report of scan {scan_id} within {deadline:g} s", kind=ReportNotReady
                    )
                self._sleep(wait)
                continue
            if response.status_code == 200:
                return self._report(response, what)
            if response.status_code == 404:
                raise self._fail(f"has no scan with the id {scan_id} (404)")
            if response.status_code == 500:
                message = self._error_text(response)
                raise self._fail(f"could not scan the image: {message}", kind=ScanFailed)
            raise self._refused(response, what)

    def scan_and_report(
        self,
        registry_url: str,
        registry_authorization: str,
        repository: str,
        digest: str,
        mime_type: str = DOCKER_MANIFEST,
        deadline: float = DEFAULT_DEADLINE,
    ) -> AdapterReport:
        """What a scan job does with an adapter: the metadata (for the report type), the scan, then its report."""
        self.metadata()
        scan_id = self.scan(registry_url, registry_authorization, repository, digest, mime_type)
        return self.report(scan_id, deadline)

    def _refresh_after(self, response: requests.Response) -> float:
        """Seconds the adapter asks to wait (Refresh-After), within reason; DEFAULT_REFRESH when it does not say."""
        try:
            wait = float(response.headers.get("Refresh-After", DEFAULT_REFRESH))
        except ValueError:
            wait = DEFAULT_REFRESH
        return min(max(wait, 0.0), MAX_REFRESH) if math.isfinite(wait) else DEFAULT_REFRESH

    def _error_text(self, response: requests.Response) -> str:
        try:
            message = error_message(json.loads(response.content))
        except (ValueError, UnicodeDecodeError):
            message = ""
        return message or response.text[:200].strip() or "no reason given (500)"

    def _report(self, response: requests.Response, what: str) -> AdapterReport:
        content_type = response.headers.get("Content-Type", "")
        media_type = known_media_type(content_type, REPORT_TYPES)
        if media_type is None:
            raise self._fail(
                f"answered {what} with the media type '{content_type or 'none'}', not a vulnerability report "
                f"({', '.join(REPORT_TYPES)})"
            )
        document = self._json(response, what, (media_type,))
        report: VulnerabilityReport = self._read(what, VulnerabilityReport.from_dict, document)
        return AdapterReport(report.scanner, list(report.findings), report.generated_at, report.artifact, media_type)
