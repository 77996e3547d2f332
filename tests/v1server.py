"""A Docker Registry HTTP API V1 server for tests, written from the V1 API specification.

No V1 registry is packaged anywhere any more (docker-registry 0.9 is long gone), so Wharf's V1
support is tested against this small server. It implements the read side the portal uses:

- `GET /v1/_ping`: 200 with `X-Docker-Registry-Version` (the V1 "is this a registry?" check);
- `GET /v1/search?q=`: `{"num_results", "query", "results": [{"name", "description", "star_count"}]}`;
- `GET /v1/repositories/<namespace>/<name>/tags`: `{"<tag>": "<image id>"}`, 404 for an unknown repository.

With `password` set, every request needs HTTP Basic auth as `username:password` (401 otherwise).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class V1Registry:
    """A V1 registry on a loopback port, holding repositories and their tags in memory."""

    def __init__(
        self,
        repositories: dict[str, dict[str, str]],
        descriptions: dict[str, str] | None = None,
        username: str = "",
        password: str = "",
    ) -> None:
        self.repositories = repositories
        self.descriptions = descriptions or {}
        self.credentials = f"{username}:{password}" if password else ""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> V1Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: tests read answers, not access logs."""

            def do_GET(self) -> None:
                if registry.credentials and not self._authorized():
                    self._send(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="v1"'})
                    return
                parts = urlsplit(self.path)
                if parts.path == "/v1/_ping":
                    self._send(200, True, {"X-Docker-Registry-Version": "0.9.1"})
                elif parts.path == "/v1/search":
                    query = parse_qs(parts.query).get("q", [""])[0].lower()
                    self._send(200, registry.search(query))
                elif parts.path.startswith("/v1/repositories/") and parts.path.endswith("/tags"):
                    name = parts.path[len("/v1/repositories/") : -len("/tags")]
                    if name in registry.repositories:
                        self._send(200, registry.repositories[name])
                    else:
                        self._send(404, {"error": "Repository not found"})
                else:
                    self._send(404, {"error": "not found"})

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(registry.credentials.encode()).decode()
                return header == expected

            def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def search(self, query: str) -> dict[str, object]:
        """The V1 search answer: repositories whose name or description holds the query."""
        results = [
            {"name": name, "description": self.descriptions.get(name, ""), "star_count": 0}
            for name in sorted(self.repositories)
            if query in name.lower() or query in self.descriptions.get(name, "").lower()
        ]
        return {"num_results": len(results), "query": query, "results": results}
