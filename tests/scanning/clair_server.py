"""A Clair v4 stand-in written from Clair's published OpenAPI document (httptransport/api/v1/openapi.yaml), on a free
loopback port: the indexer's index_report POST/GET and index_state, the matcher's vulnerability_report, and PSK auth.

It does what Clair's indexer does with a manifest that matters to Wharf: it downloads every layer URI with the headers
it was given (checking each blob against its digest), so a test proves Wharf's URIs and pull tokens work. What it
"finds" is a canned vulnerability report per manifest digest, set by the test. Faults: any operation can answer 500
or malformed JSON (`faults`), an index can never finish or end in IndexError (`outcome`), and a PSK can be required.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import requests

INDEX_PATH = "/indexer/api/v1/index_report"
STATE_PATH = "/indexer/api/v1/index_state"
REPORT_PATH = "/matcher/api/v1/vulnerability_report/"
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
HEADER_NAME = re.compile(r"^[a-zA-Z0-9\-_]+$")
# The schemas' property lists (additionalProperties: false) and required members.
MANIFEST_KEYS, LAYER_KEYS = {"hash", "layers"}, {"hash", "uri", "headers", "media_type"}
INDEX_REPORT_KEYS = {"manifest_hash", "state", "err", "success", "packages", "distributions", "repository"}
INDEX_REPORT_KEYS |= {"environments"}
REPORT_KEYS = {"manifest_hash", "packages", "distributions", "repository", "environments", "vulnerabilities"}
REPORT_KEYS |= {"package_vulnerabilities", "enrichments"}
REPORT_REQUIRED = {"distributions", "environments", "manifest_hash", "packages", "package_vulnerabilities"}
REPORT_REQUIRED |= {"vulnerabilities"}
# Clair's indexer walks these states; a report in any but the last two is still being made.
IN_PROGRESS = ("CheckManifest", "FetchLayers", "ScanLayers", "Coalesce", "IndexManifest")
SEVERITIES = {"Unknown", "Negligible", "Low", "Medium", "High", "Critical"}
# How long a "slow" operation stalls.
SLOW_SECONDS = 2
# PSK claims are checked with Clair's leeway.
LEEWAY = 15


@dataclass
class Fetch:
    """One layer download the indexer made: the URI, the status the registry answered, whether the bytes matched."""

    uri: str
    status: int
    verified: bool


def check_vulnerability_report(report: dict[str, Any]) -> None:
    """Fail loudly when a canned report is not what the schema allows (the test data must be Clair-shaped)."""
    assert set(report) >= REPORT_REQUIRED, f"missing {REPORT_REQUIRED - set(report)}"
    assert set(report) <= REPORT_KEYS, f"not in the schema: {set(report) - REPORT_KEYS}"
    for vulnerability in report["vulnerabilities"].values():
        assert {"id", "updater", "name", "normalized_severity"} <= set(vulnerability), vulnerability
        assert vulnerability["normalized_severity"] in SEVERITIES, vulnerability
    for package in report["packages"].values():
        assert {"name", "version"} <= set(package), package
    for ids in report["package_vulnerabilities"].values():
        assert all(key in report["vulnerabilities"] for key in ids), ids


class ClairServer:
    """The indexer and the matcher on one loopback address (Clair's "combo" mode), with counters for the tests.

    `reports`: manifest digest -> the canned vulnerability report (its manifest_hash is set on the way out);
    `outcome`: "finish" (download the layers, then IndexFinished), "never" (stays in FetchLayers), "error" (IndexError);
    `faults`: operation ("index_state", "index", "index_report", "vulnerability_report") -> "500", "malformed",
    "slow" (stalls SLOW_SECONDS, then answers normally) or "202" (the matcher before its first database update);
    `psk`/`issuers`: when set, every request must carry a JWT signed with the key by an allowed issuer, else 401;
    `send_headers`: False makes the indexer fetch layers without the manifest's headers (to show they matter).
    """

    def __init__(self) -> None:
        self.state = "wharf-test-state-1"
        self.reports: dict[str, dict[str, Any]] = {}
        self.outcome = "finish"
        self.faults: dict[str, str] = {}
        self.psk: bytes | None = None
        self.issuers: tuple[str, ...] = ("clairctl",)
        self.send_headers = True
        self.index_reports: dict[str, dict[str, Any]] = {}
        self.manifests: dict[str, dict[str, Any]] = {}
        self.fetches: dict[str, list[Fetch]] = {}
        self.calls: Counter[str] = Counter()
        self.refused = 0
        self._threads: list[threading.Thread] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.answer(self, "GET")

            def do_POST(self) -> None:
                server.answer(self, "POST")

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the counters say what the tests need."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        """Stop serving and wait for the indexing threads."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def require_psk(self, key: bytes, *issuers: str) -> str:
        """Require PSK auth with this key (and issuers); returns the key as Clair's config writes it (base64)."""
        self.psk = key
        self.issuers = issuers or ("clairctl",)
        return base64.b64encode(key).decode()

    # Requests.

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request (after the PSK check) to its operation, or the fault set for it."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if self.psk is not None and not self._authorized(handler.headers.get("Authorization", "")):
            self.refused += 1
            # Clair's auth middleware answers a bare 401.
            self._send(handler, 401, b"", "text/plain")
            return
        path = handler.path.split("?")[0]
        operation, digest = self._route(method, path)
        if operation is None:
            self._error(handler, 404, "not-found", f"no route for {method} {path}")
            return
        self.calls[operation] += 1
        fault = self.faults.get(operation)
        if fault == "slow":
            # Longer than the client's timeout in the tests that set it.
            time.sleep(SLOW_SECONDS)
        if fault == "500":
            self._error(handler, 500, "internal-error", f"{operation}: canned failure")
        elif fault == "202":
            # What Clair's matcher answers before its first vulnerability database update.
            self._send(handler, 202, b"", "application/json")
        elif fault == "malformed":
            self._send(handler, 200, b'{"state": "IndexFinished", "packages": {', "application/json")
        elif operation == "index":
            self._index(handler, body)
        elif operation == "index_state":
            self._index_state(handler)
        elif operation == "index_report":
            self._index_report(handler, digest)
        else:
            self._vulnerability_report(handler, digest)

    def _route(self, method: str, path: str) -> tuple[str | None, str]:
        if method == "POST" and path == INDEX_PATH:
            return "index", ""
        if method == "GET" and path == STATE_PATH:
            return "index_state", ""
        if method == "GET" and path.startswith(INDEX_PATH + "/"):
            return "index_report", path.removeprefix(INDEX_PATH + "/")
        if method == "GET" and path.startswith(REPORT_PATH):
            return "vulnerability_report", path.removeprefix(REPORT_PATH)
        return None, ""

    def _authorized(self, header: str) -> bool:
        """Clair's PSK check: a Bearer JWT signed HS256 with the key, inside its validity (with leeway), allowed iss."""
        if not header.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(
                header.removeprefix("Bearer "),
                self.psk,
                algorithms=["HS256"],
                leeway=LEEWAY,
                options={"require": ["exp"]},
            )
        except jwt.InvalidTokenError:
            return False
        return claims.get("iss") in self.issuers

    # Operations.

    def _index(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        """POST index_report: check the Manifest, answer 201 with the report in progress, index in the background."""
        try:
            manifest = json.loads(body)
        except ValueError as exc:
            self._error(handler, 400, "bad-request", f"failed to deserialize manifest: {exc}")
            return
        problem = manifest_problem(manifest)
        if problem:
            self._error(handler, 400, "bad-request", problem)
            return
        digest = manifest["hash"]
        self.manifests[digest] = manifest
        report = {"manifest_hash": digest, "state": IN_PROGRESS[0], "success": False}
        self.index_reports[digest] = report
        headers = {
            "Location": f"{INDEX_PATH}/{digest}",
            "Link": f'<{REPORT_PATH}{digest}>; rel="https://projectquay.io/clair/v1/vulnerability_report"',
            "ETag": f'"{self.state}"',
        }
        self._send_json(handler, 201, report, headers)
        thread = threading.Thread(target=self._run_index, args=(manifest,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_index(self, manifest: dict[str, Any]) -> None:
        """Fetch every layer as Clair's indexer would, then finish (or not) as the test asked."""
        digest = manifest["hash"]
        self.index_reports[digest] = {"manifest_hash": digest, "state": "FetchLayers", "success": False}
        if self.outcome == "never":
            return
        if self.outcome == "error":
            self.index_reports[digest] = _failed(digest, "canned failure: the layers could not be read")
            return
        fetches = self.fetches.setdefault(digest, [])
        for layer in manifest["layers"]:
            fetch = self._fetch(layer)
            fetches.append(fetch)
            if not fetch.verified:
                reason = f"fetching layer {layer['hash']}: {layer['uri']} answered {fetch.status}"
                self.index_reports[digest] = _failed(digest, reason)
                return
        canned = self.reports.get(digest, {})
        finished = {"manifest_hash": digest, "state": "IndexFinished", "success": True}
        for key in ("packages", "distributions", "repository", "environments"):
            if key in canned:
                finished[key] = copy.deepcopy(canned[key])
        self.index_reports[digest] = finished

    def _fetch(self, layer: dict[str, Any]) -> Fetch:
        """Download one layer blob with the manifest's headers and check it against its digest."""
        headers = {name: values[0] for name, values in layer.get("headers", {}).items()} if self.send_headers else {}
        try:
            response = requests.get(layer["uri"], headers=headers, timeout=10)
        except requests.RequestException:
            return Fetch(layer["uri"], 0, False)
        verified = response.status_code == 200 and (
            "sha256:" + hashlib.sha256(response.content).hexdigest() == layer["hash"]
        )
        return Fetch(layer["uri"], response.status_code, verified)

    def _index_state(self, handler: BaseHTTPRequestHandler) -> None:
        tag = f'"{self.state}"'
        if handler.headers.get("If-None-Match") == tag:
            self._send(handler, 304, b"", "application/json", {"ETag": tag})
            return
        self._send_json(handler, 200, {"state": self.state}, {"ETag": tag}, "application/vnd.clair.index_state.v1+json")

    def _index_report(self, handler: BaseHTTPRequestHandler, digest: str) -> None:
        if not DIGEST.match(digest):
            self._error(handler, 400, "bad-request", f"malformed path: {digest!r} is not a digest")
            return
        report = self.index_reports.get(digest)
        if report is None:
            self._error(handler, 404, "not-found", "index report not found")
            return
        self._send_json(handler, 200, report, {"ETag": f'"{self.state}"'}, "application/vnd.clair.index_report.v1+json")

    def _vulnerability_report(self, handler: BaseHTTPRequestHandler, digest: str) -> None:
        report = self.index_reports.get(digest)
        if report is None or report["state"] != "IndexFinished":
            self._error(handler, 404, "not-found", f'index report for manifest "{digest}" not found')
            return
        canned = copy.deepcopy(self.reports.get(digest) or empty_report())
        canned["manifest_hash"] = digest
        check_vulnerability_report(canned)
        # The OpenAPI document says 201 "Vulnerability Report Created" (Clair itself answers 200; Wharf takes both).
        self._send_json(handler, 201, canned, {}, "application/vnd.clair.vulnerability_report.v1+json")

    # Writing answers.

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        """Clair's error body: {"code", "message"}."""
        self._send_json(handler, status, {"code": code, "message": message})

    def _send_json(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self._send(handler, status, json.dumps(body).encode(), content_type, headers)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if status != 304:
            handler.wfile.write(body)


def manifest_problem(manifest: Any) -> str:
    """What makes a POSTed body not a Manifest of the schema (or one Clair refuses as bogus), "" when it is one."""
    if not isinstance(manifest, dict) or set(manifest) - MANIFEST_KEYS:
        return "a manifest is an object with hash and layers only"
    if not isinstance(manifest.get("hash"), str) or not DIGEST.match(manifest["hash"]):
        return "bogus manifest: hash is not a digest"
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        return "bogus manifest: no layers"
    for layer in layers:
        if not isinstance(layer, dict) or set(layer) - LAYER_KEYS or not {"hash", "uri"} <= set(layer):
            return f"a layer has hash, uri and optional headers/media_type: {layer!r}"
        if not DIGEST.match(str(layer["hash"])):
            return f"layer hash {layer['hash']!r} is not a digest"
        for name, values in layer.get("headers", {}).items():
            if (
                not HEADER_NAME.match(name)
                or not isinstance(values, list)
                or not all(isinstance(v, str) for v in values)
            ):
                return f"layer header {name!r} must map to a list of strings"
    return ""


def _failed(digest: str, reason: str) -> dict[str, Any]:
    return {"manifest_hash": digest, "state": "IndexError", "success": False, "err": reason}


def empty_report() -> dict[str, Any]:
    """A vulnerability report of an image in which Clair found nothing."""
    return {
        "manifest_hash": "",
        "packages": {},
        "distributions": {},
        "environments": {},
        "vulnerabilities": {},
        "package_vulnerabilities": {},
    }
