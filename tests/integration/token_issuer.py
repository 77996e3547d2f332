"""A small Docker token service for registries in token mode (tests/integration/registry.py TokenAuth)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from portal.core.certificates import certificate_builder
from registries.token import libtrust_key_id, parse_scope


class TokenIssuer:
    """A small Docker token service: checks Basic credentials, signs an ES256 JWT granting what was asked."""

    service = "external-test-registry"
    issuer = "external-test-issuer"

    def __init__(self, workdir: Path, username: str, password: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
        cert = certificate_builder(name, name, self.key.public_key(), days=1).sign(self.key, hashes.SHA256())
        self.cert_path = workdir / "token.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        self.username = username
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.server.server_port}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        """A token granting the scopes."""
        now = int(time.time())
        access = [a.claim() for scope in scopes for a in parse_scope(scope)]
        claims = {"iss": self.issuer, "sub": self.username, "aud": self.service, "exp": now + 300, "nbf": now - 5}
        claims |= {"iat": now, "jti": secrets.token_hex(8), "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.headers.get("Authorization") != issuer.expected:
                    self._send(401, {"details": "bad credentials"})
                    return
                scopes = parse_qs(urlsplit(self.path).query).get("scope", [])
                token = issuer.token(scopes)
                self._send(200, {"token": token, "access_token": token, "expires_in": 300})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
