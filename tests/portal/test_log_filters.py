"""django.request warnings: the registry protocol's normal 4xx answers are not logged; real faults still are."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from registries.token import issue


def request_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "django.request"]


def test_registry_protocol_answers_are_not_logged(portal_admin, caplog: pytest.LogCaptureFixture) -> None:
    client = Client()
    token = issue(portal_admin.username, [], 60)[0]
    with caplog.at_level(logging.INFO):
        # docker checks whether a blob exists before uploading it; here the portal answers for a missing project
        # (to a portal admin: anyone else gets the registry's answer, as for a private project).
        missing = client.head("/v2/nope/app/blobs/sha256:abc", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert missing.status_code == 404
        refused = client.get("/service/token", {"service": "wharf-registry"}, HTTP_AUTHORIZATION="Basic !!")
        assert refused.status_code == 401
    assert request_warnings(caplog) == []


def test_other_client_errors_are_still_logged(db, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert Client().get("/api/v1/no-such-thing").status_code == 404
    assert request_warnings(caplog) == ["Not Found: /api/v1/no-such-thing"]


def test_server_errors_under_v2_are_still_logged(db, settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.REGISTRY_URL = "http://127.0.0.1:1"  # nothing listens: the registry is down
    with caplog.at_level(logging.INFO):
        assert Client().get("/v2/").status_code == 503
    assert request_warnings(caplog) == ["Service Unavailable: /v2/"]
