"""A stand-in VCH: a real dockerd behind a small proxy that makes /info report the VIC engine.

No VIC appliance can run here, so a VCH is simulated honestly: every call reaches a real Docker
daemon; only /info's Driver, OperatingSystem and SystemStatus are rewritten to what a VIC 1.4 VCH
reports, including its registry whitelist as VIC's engine writes it (vmware/vic v1.4.0,
lib/apiservers/engine/backends/system.go: labels with a leading space, lists joined with commas).
The same proxy can pretend an old API version (for the "API version too old" path).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

VIC_INFO = {
    "Driver": "vSphere Integrated Containers v1.4.0-18375 Backend Engine",
    "OperatingSystem": "VMware Photon OS/linux",
    "Name": "vch-test",
}


def vic_system_status(whitelist: list[str] | None, insecure: list[str], remote: bool = False) -> list[list[str]]:
    """/info's SystemStatus as a VIC 1.4 VCH answers it: its backend, then the registry settings last."""
    status = [["VolumeStores", "default"], ["vSphere Integrated Containers v1.4.0-18375 Backend Engine", "RUNNING"]]
    status.append([" VMware Product", "VMware vCenter Server"])
    if insecure:
        status.append([" Insecure Registries", ",".join(insecure)])
    if whitelist:
        status.append([" Registry Whitelist Mode", "enabled; remote source" if remote else "enabled"])
        status.append([" Whitelisted Registries", ",".join(whitelist)])
    else:
        status.append([" Registry Whitelist Mode", "disabled.  All registry access allowed."])
    return status


class EngineProxy:
    """Forwards Docker API calls to `target` on 127.0.0.1:<port>, rewriting /info (and /version when asked).

    `whitelist` is the VCH's registry whitelist (None or empty: whitelist mode off); a test may change it,
    and `insecure`, between calls, as a vSphere administrator redeploying the VCH would.
    """

    def __init__(
        self,
        target: str,
        vic: bool = True,
        api_version: str = "",
        whitelist: list[str] | None = None,
        insecure: list[str] | None = None,
    ) -> None:
        self.target = target.rstrip("/")
        self.vic = vic
        self.api_version = api_version
        self.whitelist = whitelist
        self.insecure = insecure or []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = requests.request(
                    self.command, proxy.target + self.path, data=body, headers=headers, timeout=120
                )
                content = proxy.rewrite(urlsplit(self.path).path, upstream.content)
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def rewrite(self, path: str, content: bytes) -> bytes:
        """The answer with /info (and /version) rewritten; everything else untouched."""
        endpoint = "/" + path.rstrip("/").rsplit("/", 1)[-1]
        if endpoint == "/info" and self.vic:
            status = vic_system_status(self.whitelist, self.insecure)
            return json.dumps({**json.loads(content), **VIC_INFO, "SystemStatus": status}).encode()
        if endpoint == "/version" and self.api_version:
            return json.dumps({**json.loads(content), "ApiVersion": self.api_version}).encode()
        return content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
