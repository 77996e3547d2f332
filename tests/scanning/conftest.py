"""Fixture feeds in each source's own format, a loopback HTTP server that serves them like the real hosts do, and
what the scan tests share: a real registry, a vulnerable image built with dpkg's database, the feeds imported."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import shutil
import ssl
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portal.core.audit import Actor
from scanning import services
from tests.integration.registry import Registry, point_portal_at, start_registry
from tests.scanning.fixtures import vulnerable_debian_image
from tests.scanning.image_builder import BuiltImage

FEEDS = Path(__file__).parent / "feeds"
# Sources osv.dev publishes as one all.zip of records; the fixture keeps the records as files.
OSV_SOURCES = ("ubuntu", "almalinux", "pypi", "npm")
PLAIN_FEEDS = ("debian.json", "alpine-v3.19-main.json", "alpine-v3.18-main.json", "nvd-0000.json")


def write_feeds(folder: Path) -> Path:
    """Every fixture feed as the file its source publishes (OSV records zipped), named as `vulndb import` expects."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PLAIN_FEEDS:
        shutil.copy(FEEDS / name, folder / name)
    for source in OSV_SOURCES:
        with zipfile.ZipFile(folder / f"{source}.zip", "w") as archive:
            for record in sorted((FEEDS / source).glob("*.json")):
                archive.write(record, record.name)
    return folder


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    """A directory holding every fixture feed file."""
    return write_feeds(tmp_path / "feeds")


class FeedServer:
    """Serves a folder over HTTP on 127.0.0.1 with ETag and Last-Modified, answering conditional GETs with 304.

    `failing` maps a path to a status the server answers instead; `requests` records (path, If-None-Match, status).
    """

    def __init__(self, folder: Path, tls: ssl.SSLContext | None = None) -> None:
        self.folder = folder
        self.failing: dict[str, int] = {}
        self.requests: list[tuple[str, str, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test records what it needs."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{scheme}://{self.address}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        """One GET: the failure set for the path, 304 when the validators match, else the file."""
        path = handler.path.lstrip("/")
        condition = handler.headers.get("If-None-Match", "")
        file = self.folder / path
        if path in self.failing or not file.is_file():
            status = self.failing.get(path, 404)
            self.requests.append((path, condition, status))
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(file.stat().st_mtime, usegmt=True)
        status = 304 if condition == etag else 200
        self.requests.append((path, condition, status))
        handler.send_response(status)
        handler.send_header("ETag", etag)
        handler.send_header("Last-Modified", modified)
        handler.send_header("Content-Length", "0" if status == 304 else str(len(body)))
        handler.end_headers()
        if status == 200:
            handler.wfile.write(body)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server(feed_dir: Path, settings) -> Iterator[FeedServer]:
    """The fixture feeds on a loopback HTTP server, with every WHARF_VULNDB_* URL pointing at it."""
    server = FeedServer(feed_dir)
    settings.VULNDB_DEBIAN_URL = f"{server.url}/debian.json"
    settings.VULNDB_UBUNTU_URL = f"{server.url}/ubuntu.zip"
    settings.VULNDB_ALPINE_URLS = [f"{server.url}/v3.19/main.json", f"{server.url}/v3.18/main.json"]
    settings.VULNDB_ALMALINUX_URL = f"{server.url}/almalinux.zip"
    settings.VULNDB_PYPI_URL = f"{server.url}/pypi.zip"
    settings.VULNDB_NPM_URL = f"{server.url}/npm.zip"
    settings.VULNDB_NVD_URLS = [f"{server.url}/nvdcve-2.0-0000.json.gz"]
    settings.VULNDB_TIMEOUT_SECONDS = 5
    # The real hosts' paths: Alpine per branch folder, NVD gzipped.
    for branch in ("v3.19", "v3.18"):
        (feed_dir / branch).mkdir()
        shutil.copy(feed_dir / f"alpine-{branch}-main.json", feed_dir / branch / "main.json")

    (feed_dir / "nvdcve-2.0-0000.json.gz").write_bytes(gzip.compress((feed_dir / "nvd-0000.json").read_bytes()))
    yield server
    server.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real distribution registry for the module's tests."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vulnerable_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """Debian 12 with openssl and libssl3 (source openssl) installed by dpkg, in two layers."""
    return vulnerable_debian_image(tmp_path_factory.mktemp("dpkg"))


@pytest.fixture
def wired(settings: Any, registry: Registry, db: Any) -> Registry:
    """The portal pointed at the module's registry."""
    return point_portal_at(settings, registry)


@pytest.fixture
def loaded(feed_dir: Path, db: Any) -> None:
    """Every fixture feed imported into the vulnerability database."""
    services.import_path(Actor.system("test"), feed_dir)
