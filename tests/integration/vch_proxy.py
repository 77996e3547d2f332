"""A stand-in VCH: a real dockerd behind a small proxy that makes /info report the VIC engine.

No VIC appliance can run here, so a VCH is simulated honestly: every call reaches a real Docker
daemon; only /info's Driver and OperatingSystem are rewritten to what a VIC 1.4 VCH reports.
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


class EngineProxy:
    """Forwards Docker API calls to `target` on 127.0.0.1:<port>, rewriting /info (and /version when asked)."""

    def __init__(self, target: str, vic: bool = True, api_version: str = "") -> None:
        self.target = target.rstrip("/")
        self.vic = vic
        self.api_version = api_version
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
            return json.dumps({**json.loads(content), **VIC_INFO}).encode()
        if endpoint == "/version" and self.api_version:
            return json.dumps({**json.loads(content), "ApiVersion": self.api_version}).encode()
        return content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
