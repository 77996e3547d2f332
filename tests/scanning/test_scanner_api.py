"""The scanners API (/api/v1/scanners) and a project's scanner (/api/v1/projects/{name}/scanner): secrets are
write-only, one default at a time, the built-in scanner stays; Test Connection asks the Clair stand-in for its
index state and Wharf's own adapter server (served by this test's live server) for its metadata, and says why when
nothing answers.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from portal.core.audit import Actor
from portal.core.models import AuditEvent, User
from portal.core.services import create_token
from projects.models import Project
from scanning.models import ScannerRegistration
from tests.conftest import client_for
from tests.scanning.clair_server import ClairServer

PSK = base64.b64encode(b"clair's own key").decode()


@pytest.fixture
def api(portal_admin: User) -> Any:
    return client_for(portal_admin)


@pytest.fixture
def clair_server() -> Any:
    server = ClairServer()
    yield server
    server.close()


def test_secrets_are_write_only_and_an_empty_one_keeps_the_stored_one(db: Any, api: Any) -> None:
    created = api.post(
        "/api/v1/scanners",
        {"name": "clair", "kind": "clair", "indexer_url": "http://127.0.0.1:6060", "psk": PSK},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "psk" not in created.json() and created.json()["has_psk"] is True
    listed = api.get("/api/v1/scanners").json()
    assert [row["name"] for row in listed] == ["wharf", "clair"] and PSK not in str(listed)
    kept = api.patch("/api/v1/scanners/clair", {"psk": "", "description": "ours"}, format="json")
    assert kept.status_code == 200 and kept.json()["has_psk"] is True
    cleared = api.patch("/api/v1/scanners/clair", {"clear_psk": True}, format="json")
    assert cleared.json()["has_psk"] is False
    bad = api.patch("/api/v1/scanners/clair", {"psk": "%%%"}, format="json")
    assert bad.status_code == 400 and "psk" in bad.json()["errors"]
    assert PSK not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_one_default_and_the_built_in_scanner_cannot_be_deleted(db: Any, api: Any) -> None:
    api.post(
        "/api/v1/scanners",
        {"name": "trivy", "kind": "harbor_adapter", "adapter_url": "http://127.0.0.1:1"},
        format="json",
    )
    assert api.delete("/api/v1/scanners/wharf").status_code == 409
    made = api.post("/api/v1/scanners/trivy/default")
    assert made.status_code == 200 and made.json()["is_default"] is True
    defaults = [row["name"] for row in api.get("/api/v1/scanners").json() if row["is_default"]]
    assert defaults == ["trivy"]
    assert api.delete("/api/v1/scanners/trivy").status_code == 409
    assert api.post("/api/v1/scanners/wharf/default").status_code == 200
    assert api.delete("/api/v1/scanners/trivy").status_code == 204
    assert api.post("/api/v1/scanners", {"name": "x", "kind": "builtin"}, format="json").status_code == 400


def test_test_connection_shows_clairs_index_state(db: Any, api: Any, clair_server: ClairServer) -> None:
    api.post("/api/v1/scanners", {"name": "clair", "kind": "clair", "indexer_url": clair_server.url}, format="json")

    tested = api.post("/api/v1/scanners/clair/test")

    assert tested.status_code == 200, tested.content
    body = tested.json()
    assert body["ok"] is True and body["metadata"] is None
    assert body["message"] == f"index state {clair_server.state}; the matcher is ready"
    assert body["scanner"]["last_test_ok"] is True and body["scanner"]["last_test_result"] == body["message"]


def test_test_connection_of_a_scanner_that_does_not_answer_says_why(db: Any, api: Any) -> None:
    api.post(
        "/api/v1/scanners",
        {"name": "gone", "kind": "harbor_adapter", "adapter_url": "http://127.0.0.1:1"},
        format="json",
    )

    body = api.post("/api/v1/scanners/gone/test").json()

    assert body["ok"] is False and "http://127.0.0.1:1/api/v1" in body["message"]
    assert ScannerRegistration.objects.get(name="gone").last_test_ok is False


@pytest.mark.django_db(transaction=True)
def test_test_connection_shows_the_metadata_of_wharfs_own_adapter(live_server: Any, portal_admin: User) -> None:
    api = client_for(portal_admin)
    token = create_token(Actor(portal_admin, "127.0.0.1"), "scanner")[1]
    api.post(
        "/api/v1/scanners",
        {
            "name": "other-wharf",
            "kind": "harbor_adapter",
            "adapter_url": f"{live_server.url}/scanner",
            "authorization": f"Bearer {token}",
        },
        format="json",
    )

    body = api.post("/api/v1/scanners/other-wharf/test").json()

    assert body["ok"] is True, body
    assert body["metadata"]["scanner"]["name"] == "Wharf"
    assert body["message"].startswith("Wharf ")
    # A wrong Authorization is refused by the adapter, and the test says so.
    api.patch("/api/v1/scanners/other-wharf", {"authorization": "Bearer wrong"}, format="json")
    refused = api.post("/api/v1/scanners/other-wharf/test").json()
    assert refused["ok"] is False and "401" in refused["message"], refused


def test_a_project_picks_its_scanner_through_the_api(db: Any, make_user: Any, portal_admin: User) -> None:
    Project.objects.create(name="web")
    api = client_for(portal_admin)
    api.post(
        "/api/v1/scanners", {"name": "clair", "kind": "clair", "indexer_url": "http://127.0.0.1:6060"}, format="json"
    )
    assert api.get("/api/v1/projects/web/scanner").json() == {"scanner": None, "effective": "wharf"}

    picked = api.put("/api/v1/projects/web/scanner", {"scanner": "clair"}, format="json")

    assert picked.status_code == 200 and picked.json() == {"scanner": "clair", "effective": "clair"}
    unknown = api.put("/api/v1/projects/web/scanner", {"scanner": "nope"}, format="json")
    assert unknown.status_code == 400 and "scanner" in unknown.json()["errors"]
    api.patch("/api/v1/scanners/clair", {"enabled": False}, format="json")
    assert api.get("/api/v1/projects/web/scanner").json() == {"scanner": "clair", "effective": "wharf"}
    assert api.put("/api/v1/projects/web/scanner", {"scanner": None}, format="json").json()["scanner"] is None
