"""Signature state of tags in the API and the tags table, the /signatures resource, and deleting a repository's trust
data with it (signed images with real notary: tests/integration/test_content_trust.py and tests/e2e/test_signed.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core.certificates import pki_paths
from portal.core.models import AuditEvent
from projects.models import Project
from registries import content_trust
from registries.content_trust import DIGEST_MISMATCH, NO_TRUST_DATA, NOT_SIGNED, Signatures
from registries.models import Repository, Tag, TrustCollection
from registries.tuf import RELEASES, TARGETS, SignedTarget
from tests.conftest import client_for, logged_in, page_text
from tests.loopback import HttpsServer
from tests.registries import test_api
from tests.registries.test_api import OTHER, SHARED, FakeRegistry

pytestmark = pytest.mark.django_db
# The registries API tests' stand-in registry, the one the services call here.
registry = test_api.registry
CLOSED = "https://127.0.0.1:1"
GUN = "127.0.0.1:8282/alpha/app"
TAGS_URL = "/api/v1/projects/alpha/repositories/app/tags"
SIGNATURES_URL = "/api/v1/projects/alpha/repositories/app/signatures"


@pytest.fixture
def app(alpha: Project, registry: FakeRegistry) -> Repository:
    """alpha/app: 1.0 and latest on one manifest, 2.0 on another."""
    repository = Repository.objects.create(project=alpha, name="alpha/app")
    for name, digest in (("1.0", SHARED), ("latest", SHARED), ("2.0", OTHER)):
        Tag.objects.create(repository=repository, name=name, digest=digest)
    registry.tags_by_repo["alpha/app"] = {"1.0": SHARED, "latest": SHARED, "2.0": OTHER}
    return repository


class Reads:
    """Stands in for content_trust.signatures: 1.0 signed (releases), 2.0 signed for another digest; counts reads."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.found = Signatures(
            targets={
                "1.0": SignedTarget("1.0", SHARED, 528, RELEASES),
                "2.0": SignedTarget("2.0", "sha256:" + "c" * 64, 530, TARGETS),
            }
        )

    def __call__(self, repository: str) -> Signatures:
        self.calls.append(repository)
        return self.found


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    fake = Reads()
    monkeypatch.setattr(content_trust, "signatures", fake)
    return fake


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


# The API.


def test_tags_list_says_which_tags_are_signed_and_why_not(role_users: dict, app: Repository, reads: Reads) -> None:
    tags = by_name(client_for(role_users["viewer"]).get(TAGS_URL).json()["results"])
    assert tags["1.0"]["signed"] is True
    assert tags["1.0"]["signature"] == {"signed": True, "reason": "", "role": RELEASES, "digest": SHARED}
    assert tags["latest"]["signature"] == {"signed": False, "reason": NOT_SIGNED, "role": None, "digest": None}
    # A tag pushed again without signing: the signature names the old digest.
    assert tags["2.0"]["signed"] is False
    assert tags["2.0"]["signature"] == {
        "signed": False, "reason": DIGEST_MISMATCH, "role": TARGETS, "digest": "sha256:" + "c" * 64,
    }  # fmt: skip
    assert reads.calls == ["alpha/app"]


def test_tag_detail_has_its_signature(role_users: dict, app: Repository, reads: Reads) -> None:
    tag = client_for(role_users["developer"]).get(f"{TAGS_URL}/1.0").json()
    assert (tag["signed"], tag["signature"]["role"]) == (True, RELEASES)
    assert reads.calls == ["alpha/app"]


def test_tags_list_reads_trust_data_once_and_its_queries_do_not_grow(api: Any, app: Repository, reads: Reads) -> None:
    def queries(page_size: int) -> int:
        reads.calls.clear()
        with CaptureQueriesContext(connection) as captured:
            assert api.get(f"{TAGS_URL}?page_size={page_size}").status_code == 200
        assert reads.calls == ["alpha/app"], "one read of the trust data per response, not one per tag"
        return len(captured)

    for index in range(30):
        Tag.objects.create(repository=app, name=f"3.{index}", digest=OTHER)
    assert queries(3) == queries(33)


def test_signatures_lists_verified_targets_and_each_tag(role_users: dict, app: Repository, reads: Reads) -> None:
    body = client_for(role_users["viewer"]).get(SIGNATURES_URL).json()
    assert (body["repository"], body["content_trust"], body["problem"]) == ("alpha/app", False, "")
    assert body["targets"] == [
        {"tag": "1.0", "digest": SHARED, "length": 528, "role": RELEASES},
        {"tag": "2.0", "digest": "sha256:" + "c" * 64, "length": 530, "role": TARGETS},
    ]
    assert body["tags"] == [
        {"name": "1.0", "digest": SHARED, "signed": True, "reason": ""},
        {"name": "2.0", "digest": OTHER, "signed": False, "reason": DIGEST_MISMATCH},
        {"name": "latest", "digest": SHARED, "signed": False, "reason": NOT_SIGNED},
    ]
    assert reads.calls == ["alpha/app"]


def test_signatures_of_a_repository_nobody_signed_say_so(role_users: dict, app: Repository, alpha: Project) -> None:
    alpha.content_trust = True
    alpha.save()
    body = client_for(role_users["project_admin"]).get(SIGNATURES_URL).json()
    assert (body["content_trust"], body["problem"], body["targets"]) == (True, NO_TRUST_DATA, [])
    assert {tag["reason"] for tag in body["tags"]} == {NO_TRUST_DATA}


def test_signatures_when_notary_is_down_are_a_200_naming_the_problem(
    role_users: dict, app: Repository, settings: Any
) -> None:
    settings.NOTARY_INTERNAL_URL = CLOSED
    TrustCollection.objects.create(gun=GUN, repository="alpha/app")
    response = client_for(role_users["viewer"]).get(SIGNATURES_URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["problem"].startswith("notary unreachable"), body
    assert all(not tag["signed"] and tag["reason"] == body["problem"] for tag in body["tags"])


def test_signatures_without_a_notary_say_content_trust_is_not_configured(
    role_users: dict, app: Repository, settings: Any
) -> None:
    settings.NOTARY_INTERNAL_URL = ""
    body = client_for(role_users["viewer"]).get(SIGNATURES_URL).json()
    assert body["problem"] == "content trust is not configured: the portal has no notary"


def test_signatures_of_an_unknown_repository_are_404(role_users: dict, app: Repository) -> None:
    response = client_for(role_users["viewer"]).get("/api/v1/projects/alpha/repositories/nothing/signatures")
    assert response.status_code == 404


# Deleting a repository deletes its trust data.


class NotaryStandIn:
    """An HTTPS server with the portal's certificate answering DELETEs of trust data with `status`; records them."""

    def __init__(self, status: int) -> None:
        self.requests: list[tuple[str, str]] = []
        recorded, answer = self.requests, status

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:
                recorded.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.https = HttpsServer(Handler, pki_paths().server_cert, pki_paths().server_key)
        self.url = self.https.url

    def close(self) -> None:
        self.https.close()


@pytest.fixture
def notary_answering(settings: Any) -> Iterator[Callable[[int], NotaryStandIn]]:
    started: list[NotaryStandIn] = []

    def start(status: int) -> NotaryStandIn:
        started.append(NotaryStandIn(status))
        settings.NOTARY_INTERNAL_URL = started[-1].url
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_deleting_a_repository_deletes_its_trust_data(
    role_users: dict, app: Repository, registry: FakeRegistry, notary_answering: Callable[[int], NotaryStandIn]
) -> None:
    notary = notary_answering(202)
    TrustCollection.objects.create(gun=GUN, repository="alpha/app")
    TrustCollection.objects.create(gun="127.0.0.1:8282/alpha/other", repository="alpha/other")
    response = client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/repositories/app")
    assert response.status_code == 204
    assert [path for path, _ in notary.requests] == [f"/v2/{GUN}/_trust/tuf/"]
    assert notary.requests[0][1].startswith("Bearer ")
    assert list(TrustCollection.objects.values_list("repository", flat=True)) == ["alpha/other"]
    audit = AuditEvent.objects.get(action="delete", resource_name="alpha/app")
    assert audit.detail == {"manifests": 2}


def test_deleting_a_repository_while_notary_is_down_names_the_trust_data_left(
    client: Client, role_users: dict, app: Repository, registry: FakeRegistry, settings: Any
) -> None:
    settings.NOTARY_INTERNAL_URL = CLOSED
    TrustCollection.objects.create(gun=GUN, repository="alpha/app")
    browser = logged_in(client, role_users["project_admin"])
    response = browser.post(
        reverse("repository-delete", args=["alpha"]), {"repositories": "alpha/app"}, secure=True, follow=True
    )
    # The registry's data is gone, so the repository is too; the trust data notary kept is named.
    assert not Repository.objects.filter(name="alpha/app").exists()
    assert ("delete", "alpha/app", SHARED) in registry.calls
    assert f"Notary could not delete the trust data of {GUN}." in page_text(response)
    audit = AuditEvent.objects.get(action="delete", resource_name="alpha/app")
    assert audit.detail == {"manifests": 2, "trust_data_left": [GUN]}
    assert TrustCollection.objects.filter(gun=GUN).exists()


def test_deleting_the_last_tag_deletes_the_trust_data_with_the_repository(
    role_users: dict,
    app: Repository,
    registry: FakeRegistry,
    notary_answering: Callable[[int], NotaryStandIn],
    django_capture_on_commit_callbacks: Any,
) -> None:
    notary = notary_answering(202)
    TrustCollection.objects.create(gun=GUN, repository="alpha/app")
    admin = client_for(role_users["project_admin"])
    for tag in ("1.0", "latest"):
        with django_capture_on_commit_callbacks(execute=True):
            assert admin.delete(f"/api/v1/projects/alpha/repositories/app/tags/{tag}").status_code == 204
    assert notary.requests == [], "the repository still holds 2.0: its signatures stay"
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete("/api/v1/projects/alpha/repositories/app/tags/2.0").status_code == 204
    assert not Repository.objects.filter(name="alpha/app").exists()
    assert [path for path, _ in notary.requests] == [f"/v2/{GUN}/_trust/tuf/"]
    assert not TrustCollection.objects.filter(repository="alpha/app").exists()


def test_notary_refusing_the_deletion_counts_as_left(
    role_users: dict, app: Repository, registry: FakeRegistry, notary_answering: Callable[[int], NotaryStandIn]
) -> None:
    notary_answering(500)
    TrustCollection.objects.create(gun=GUN, repository="alpha/app")
    assert client_for(role_users["portal_admin"]).delete("/api/v1/projects/alpha/repositories/app").status_code == 204
    assert AuditEvent.objects.get(action="delete", resource_name="alpha/app").detail["trust_data_left"] == [GUN]


# The tags table.


def test_tags_table_shows_signed_and_unsigned_with_the_reason(
    client: Client, role_users: dict, app: Repository, reads: Reads
) -> None:
    browser = logged_in(client, role_users["viewer"])
    response = browser.get(reverse("repository-detail", args=["alpha", "app"]), secure=True)
    html = response.content.decode()
    assert '<th class="left">Signed</th>' in html
    text = page_text(response)
    assert DIGEST_MISMATCH in text and NOT_SIGNED in text
    assert html.count('data-signed="true"') == 1 and html.count('data-signed="false"') == 2
    assert 'aria-label="Signed"' in html
    assert reads.calls == ["alpha/app"]


def test_tags_table_of_a_content_trust_project_says_pulls_are_refused(
    client: Client, role_users: dict, app: Repository, alpha: Project
) -> None:
    alpha.content_trust = True
    alpha.save()
    response = logged_in(client, role_users["viewer"]).get(
        reverse("repository-detail", args=["alpha", "app"]), secure=True
    )
    html = response.content.decode()
    assert html.count('<span class="label label-danger">unsigned</span>') == 3
    assert f'title="Pulls are refused: image not signed: {NO_TRUST_DATA}"' in html


def test_tags_table_without_notary_or_content_trust_has_no_signed_column(
    client: Client, role_users: dict, app: Repository, settings: Any, reads: Reads
) -> None:
    settings.NOTARY_INTERNAL_URL = ""
    response = logged_in(client, role_users["viewer"]).get(
        reverse("repository-detail", args=["alpha", "app"]), secure=True
    )
    assert ">Signed<" not in response.content.decode()
    assert reads.calls == []


def test_tags_table_with_content_trust_but_no_notary_says_why_every_tag_is_unsigned(
    client: Client, role_users: dict, app: Repository, alpha: Project, settings: Any
) -> None:
    settings.NOTARY_INTERNAL_URL = ""
    alpha.content_trust = True
    alpha.save()
    response = logged_in(client, role_users["viewer"]).get(
        reverse("repository-detail", args=["alpha", "app"]), secure=True
    )
    assert page_text(response).count(">content trust is not configured: the portal has no notary<") == 3
