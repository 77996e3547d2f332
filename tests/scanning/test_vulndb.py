"""The vulnerability database: updaters over loopback HTTP (conditional GETs, failures), air-gapped import, export."""

from __future__ import annotations

import io
import json
import socket
import ssl
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from portal.core import trust
from portal.core.audit import Actor
from portal.core.errors import Conflict, Forbidden, Invalid, NotFound
from portal.core.models import AuditEvent
from scanning import services
from scanning.models import AffectedPackage, FeedSource, Vulnerability
from tests.portal.test_trust import make_certificate
from tests.scanning.conftest import FeedServer
from tests.scanning.test_matcher import BOOKWORM, DEBIAN_IMAGE, NODE_PACKAGES, PYTHON_PACKAGES

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
# What each fixture feed holds: (advisories, affected-package rows).
COUNTS = {
    "debian": (9, 11),
    "ubuntu": (4, 4),  # UBUNTU-CVE-0000-1104 is Ubuntu Pro's only: left out.
    "alpine-v3.19-main": (7, 7),
    "alpine-v3.18-main": (1, 1),
    "almalinux": (4, 4),  # ALSA-0000:1301 names two CVEs.
    "pypi": (7, 10),  # PYSEC and GHSA of CVE-0000-1401 fold into one; PYSEC-0000-1408 is npm's: left out.
    "npm": (4, 4),
    "nvd-0000": (4, 0),
}
IMAGE = DEBIAN_IMAGE + PYTHON_PACKAGES + NODE_PACKAGES


def loaded_counts() -> dict[str, tuple[int, int]]:
    """Each feed's advisories and rows as the database holds them."""
    return {
        feed.name: (
            Vulnerability.objects.filter(source=feed.name).count(),
            AffectedPackage.objects.filter(vulnerability__source=feed.name).count(),
        )
        for feed in FeedSource.objects.all()
    }


def test_update_fetches_every_feed_and_records_it(feed_server: FeedServer) -> None:
    from scanning.matcher import match

    results = services.update_feeds(SYSTEM)
    assert {r.name: (r.changed, r.error) for r in results} == {name: (True, "") for name in COUNTS}
    assert loaded_counts() == COUNTS
    debian = FeedSource.objects.get(name="debian")
    assert debian.url == f"{feed_server.url}/debian.json"
    assert debian.etag.startswith('"') and debian.last_modified.endswith("GMT")
    assert debian.loaded == {"vulnerabilities": 9, "packages": 11}
    assert debian.last_run == debian.last_success == debian.last_changed and debian.error == ""
    assert len(match(BOOKWORM, IMAGE)) == 14
    assert AuditEvent.objects.filter(action="update", resource_type="vulndb", outcome="success").count() == 8


def test_unchanged_feeds_answer_304_and_load_nothing(feed_server: FeedServer) -> None:
    services.update_feeds(SYSTEM)
    before = {feed.name: (feed.last_changed, feed.etag) for feed in FeedSource.objects.all()}
    first_ids = set(Vulnerability.objects.values_list("id", flat=True))
    feed_server.requests.clear()

    results = services.update_feeds(SYSTEM)

    assert [r.changed for r in results] == [False] * 8
    assert all(status == 304 and etag for _, etag, status in feed_server.requests)
    assert len(feed_server.requests) == 8
    assert {feed.name: (feed.last_changed, feed.etag) for feed in FeedSource.objects.all()} == before
    assert set(Vulnerability.objects.values_list("id", flat=True)) == first_ids
    assert loaded_counts() == COUNTS


def test_a_changed_feed_replaces_its_advisories_and_keeps_the_ids_of_those_it_keeps(
    feed_server: FeedServer, feed_dir: Path
) -> None:
    services.update_feeds(SYSTEM, ["debian"])
    kept = Vulnerability.objects.get(source="debian", name="CVE-0000-1001").pk
    tracker = json.loads((feed_dir / "debian.json").read_text())
    del tracker["openssl"]["CVE-0000-1004"]
    tracker["openssl"]["CVE-0000-1001"]["releases"]["bookworm"]["fixed_version"] = "3.0.11-1~deb12u1"
    (feed_dir / "debian.json").write_text(json.dumps(tracker))

    [result] = services.update_feeds(SYSTEM, ["debian"])

    assert (result.changed, result.counts) == (True, {"vulnerabilities": 8, "packages": 10})
    assert not Vulnerability.objects.filter(name="CVE-0000-1004").exists()
    assert Vulnerability.objects.get(source="debian", name="CVE-0000-1001").pk == kept
    from scanning.matcher import match

    assert {(f.vulnerability, f.package) for f in match(BOOKWORM, DEBIAN_IMAGE)} == {
        ("CVE-0000-1006", "libssl3"),
        ("CVE-0000-1006", "openssl"),
        ("CVE-0000-1011", "passwd"),
        ("CVE-0000-1013", "coreutils"),
    }


def test_a_failing_feed_records_its_error_and_keeps_the_old_data(feed_server: FeedServer, feed_dir: Path) -> None:
    services.update_feeds(SYSTEM)
    success = FeedSource.objects.get(name="debian").last_success
    feed_server.failing["debian.json"] = 503
    (feed_dir / "pypi.zip").write_bytes(b"this is no zip")

    results = {r.name: r for r in services.update_feeds(SYSTEM)}

    assert results["debian"].error == f"{feed_server.url}/debian.json answered 503"
    assert results["pypi"].error.startswith("OSV pypi: not a zip of OSV records")
    assert [name for name, r in results.items() if r.error] == ["debian", "pypi"]
    debian = FeedSource.objects.get(name="debian")
    assert debian.error == results["debian"].error and debian.last_success == success
    assert debian.last_run > success
    assert loaded_counts() == COUNTS
    assert AuditEvent.objects.filter(resource_type="vulndb", outcome="failure").count() == 2

    # Once the feed answers again the error clears.
    del feed_server.failing["debian.json"]
    services.update_feeds(SYSTEM, ["debian"])
    assert FeedSource.objects.get(name="debian").error == ""


def test_a_feed_with_unforeseen_content_fails_alone(feed_server: FeedServer, feed_dir: Path) -> None:
    (feed_dir / "debian.json").write_text('{"openssl": {"CVE-0000-1001": {"releases": "bookworm"}}}')
    results = {r.name: r for r in services.update_feeds(SYSTEM, ["debian", "npm"])}
    assert results["debian"].error == (
        "debian: the feed could not be read (AttributeError: 'str' object has no attribute 'items')"
    )
    assert (results["npm"].changed, results["npm"].error) == (True, "")
    assert FeedSource.objects.get(name="debian").error == results["debian"].error


def test_an_unreachable_feed_says_so(feed_dir: Path, settings) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.VULNDB_DEBIAN_URL = f"http://127.0.0.1:{port}/json"
    [result] = services.update_feeds(SYSTEM, ["debian"])
    assert result.error == f"127.0.0.1:{port}: connection refused"


def test_https_feeds_go_through_the_trust_flow(feed_dir: Path, tmp_path: Path, settings, portal_admin) -> None:
    keys = make_certificate("feeds.example", ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*keys.write(tmp_path, "feeds"))
    server = FeedServer(feed_dir, context)
    settings.VULNDB_NPM_URL = f"{server.url}/npm.zip"
    try:
        [refused] = services.update_feeds(SYSTEM, ["npm"])
        assert refused.error == f"the certificate of {server.address} is not trusted"
        assert not Vulnerability.objects.exists()

        trust.trust(Actor(portal_admin), server.address, keys.cert_pem)
        [result] = services.update_feeds(SYSTEM, ["npm"])
    finally:
        server.close()
    assert (result.error, result.counts) == ("", {"vulnerabilities": 4, "packages": 4})


def test_a_source_set_off_is_not_fetched(feed_server: FeedServer, settings) -> None:
    settings.VULNDB_NVD_URLS = ["off"]
    assert [r.name for r in services.update_feeds(SYSTEM, ["nvd", "npm"])] == ["npm"]
    with pytest.raises(Invalid, match="unknown vulnerability source suse"):
        services.update_feeds(SYSTEM, ["suse"])


@pytest.fixture
def no_network(monkeypatch) -> None:
    """Any outbound connection but the database's fails, as on a site without internet."""
    from django.db import connection

    connection.ensure_connection()
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[1] == 5432:
            return real_connect(self, address)
        raise OSError("network is unreachable (air-gapped test)")

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_vulndb_import_loads_a_directory_of_feeds_with_no_network(feed_dir: Path, no_network) -> None:
    from scanning.matcher import match

    out = io.StringIO()
    call_command("vulndb", "import", str(feed_dir), stdout=out)

    assert loaded_counts() == COUNTS
    assert "debian: 9 advisories, 11 packages" in out.getvalue()
    debian = FeedSource.objects.get(name="debian")
    # An imported copy has no validators, so the next online update downloads the feed in full.
    assert (debian.url, debian.etag, debian.last_modified, debian.error) == ("", "", "", "")
    assert len(match(BOOKWORM, IMAGE)) == 14


def test_export_then_import_a_bundle_restores_the_same_findings(feed_dir: Path, tmp_path: Path, no_network) -> None:
    from scanning.matcher import match

    services.import_path(SYSTEM, feed_dir)
    expected = match(BOOKWORM, IMAGE)
    bundle = tmp_path / "vulndb.jsonl.zst"
    out = io.StringIO()
    call_command("vulndb", "export", str(bundle), stdout=out)
    assert out.getvalue().strip() == "wrote 40 advisories of 8 feeds"

    Vulnerability.objects.all().delete()
    FeedSource.objects.all().delete()
    call_command("vulndb", "import", str(bundle), stdout=io.StringIO())

    assert loaded_counts() == COUNTS
    assert match(BOOKWORM, IMAGE) == expected
    assert [(f.description, f.links, f.cvss_score) for f in match(BOOKWORM, IMAGE)] == [
        (f.description, f.links, f.cvss_score) for f in expected
    ]
    withdrawn = Vulnerability.objects.get(name="PYSEC-0000-1403")
    assert withdrawn.withdrawn is not None


def test_import_bundle_upload_for_admins_only(feed_dir: Path, tmp_path: Path, make_user, portal_admin) -> None:
    services.import_path(SYSTEM, feed_dir / "npm.zip")
    bundle = tmp_path / "b.zst"
    services.export_bundle(SYSTEM, bundle)
    Vulnerability.objects.all().delete()

    with pytest.raises(Forbidden):
        services.import_bundle(Actor(make_user("dev")), SimpleUploadedFile("b.zst", bundle.read_bytes()))
    results = services.import_bundle(Actor(portal_admin), SimpleUploadedFile("b.zst", bundle.read_bytes()))

    assert [(r.name, r.counts) for r in results] == [("npm", {"vulnerabilities": 4, "packages": 4})]
    event = AuditEvent.objects.get(action="import", username=portal_admin.username)
    assert (event.resource_name, event.detail["file"]) == ("npm", "b.zst")


def test_import_a_single_uploaded_feed_file(feed_dir: Path, portal_admin) -> None:
    upload = SimpleUploadedFile("alpine-v3.19-main.json", (feed_dir / "alpine-v3.19-main.json").read_bytes())
    [result] = services.import_bundle(Actor(portal_admin), upload, upload.name)
    assert (result.name, result.counts) == ("alpine-v3.19-main", {"vulnerabilities": 7, "packages": 7})


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("debian.json", b"[1, 2]", "Debian tracker JSON: expected an object of source packages"),
        ("debian.json", b"{not json", "not a JSON document"),
        ("alpine-x.json", b'{"packages": []}', "Alpine secdb: distroversion is missing"),
        ("nvd-1.json", b'{"vulnerabilities": [{"cve": {}}]}', "NVD JSON 2.0: a vulnerability has no cve.id"),
        (
            "debian.json",
            b'{"openssl": {"CVE-1": {"releases": 1}}}',
            "debian: the feed could not be read (AttributeError:",
        ),
        ("redhat.xml", b"<oval/>", "redhat.xml: not a feed file (name it after its source: debian, ubuntu"),
        ("b.zst", b"\x28\xb5\x2f\xfdjunk", "not a wharf-vulndb bundle of version 1"),
    ],
)
def test_bad_files_are_refused_with_a_reason(name: str, content: bytes, message: str, portal_admin) -> None:
    with pytest.raises(Invalid) as caught:
        services.import_bundle(Actor(portal_admin), io.BytesIO(content), name)
    assert message in caught.value.message
    assert not Vulnerability.objects.exists()


def test_a_directory_with_a_stray_file_loads_nothing(feed_dir: Path) -> None:
    (feed_dir / "README.txt").write_text("feeds of 2026-11-30")
    with pytest.raises(CommandError, match=r"^README.txt: not a feed file \(name it after its source: debian, "):
        call_command("vulndb", "import", str(feed_dir))
    assert not FeedSource.objects.exists()


def test_command_reports_missing_paths_and_shows_status(feed_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        call_command("vulndb", "import", str(tmp_path / "nowhere"))
    with pytest.raises(NotFound):
        services.import_path(SYSTEM, tmp_path / "nowhere")
    call_command("vulndb", "import", str(feed_dir / "debian.json"), stdout=io.StringIO())
    out = io.StringIO()
    call_command("vulndb", "status", stdout=out)
    assert out.getvalue().startswith("debian: last success 20")
    assert out.getvalue().rstrip().endswith(", 9 advisories")


def test_update_job_logs_each_feed_and_fails_naming_the_failed_ones(
    feed_server: FeedServer, portal_admin, make_user
) -> None:
    from portal.core.jobs import run_job
    from portal.core.models import JobState

    job = services.start_update(Actor(portal_admin), ["debian", "npm"])
    with pytest.raises(Conflict, match="a vulnerability database update is already running"):
        services.start_update(Actor(portal_admin))
    done = run_job(job.pk)
    assert (done.state, done.progress, done.total_units) == (JobState.SUCCEEDED, 100, 2)
    assert [line.text for line in done.log_lines.order_by("pk")] == [
        "debian: 9 advisories, 11 packages",
        "npm: 4 advisories, 4 packages",
        "2 feeds up to date",
    ]

    feed_server.failing["npm.zip"] = 404
    failed = run_job(services.start_update(Actor(portal_admin), ["debian", "npm"]).pk)
    assert failed.state == JobState.FAILED
    assert failed.error == "1 of 2 feeds failed (npm); their previous data is kept"
    assert loaded_counts() == {"debian": (9, 11), "npm": (4, 4)}
    with pytest.raises(Forbidden):
        services.start_update(Actor(make_user("dev")))


def test_the_schedule_starts_one_update_job_at_a_time(db) -> None:
    from django_celery_beat.models import PeriodicTask

    from portal.core.models import Job
    from portal.core.schedules import install_schedules
    from scanning.tasks import scheduled_vulndb_update

    install_schedules()
    assert PeriodicTask.objects.get(name="vulnerability database update").task == "scanning.scheduled_vulndb_update"
    scheduled_vulndb_update()
    scheduled_vulndb_update()
    assert list(Job.objects.values_list("kind", "created_by", "parameters")) == [
        ("vulndb_update", "scheduler", {"sources": []})
    ]
