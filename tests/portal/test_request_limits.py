"""Request bodies: a size limit outside /v2/ (413 with the error body) and JSON nested too deeply (400)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from portal.core.parsers import MAX_DEPTH, nesting_depth


def test_a_json_body_over_the_limit_is_413_unread(api, settings) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 4096
    body = json.dumps({"name": "big", "padding": "x" * 5000})
    response = api.post("/api/v1/projects", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"The request body is {len(body)} bytes; at most 4096 are accepted.",
        "errors": {},
    }
    assert api.post("/api/v1/projects", {"name": "small"}, format="json").status_code == 201


def test_a_form_over_the_limit_is_413(db, settings) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 4096
    response = Client().post("/login/", {"username": "x" * 5000, "password": "y"})
    assert response.status_code == 413


def test_v2_uploads_are_not_limited(db, settings) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 4096
    # No token may push, so the proxy never reads the body: the point is only that the limit let it through.
    response = Client().post("/v2/alpha/app/blobs/uploads/", b"x" * 5000, content_type="application/octet-stream")
    assert response.status_code != 413


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_400(api, depth: int) -> None:
    body = "[" * depth + "]" * depth
    response = api.post("/api/v1/projects", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == f"JSON parse error - nested deeper than {MAX_DEPTH} levels"


def test_json_within_the_depth_is_parsed(api) -> None:
    nested: object = "deep"
    for _ in range(MAX_DEPTH - 1):
        nested = {"a": nested}
    assert nesting_depth({"name": nested}) == MAX_DEPTH
    response = api.post("/api/v1/projects", {"name": "ok", "extra": nested}, format="json")
    assert response.status_code == 201, response.content


def test_deeply_nested_notification_is_400(db, settings) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = Client().post(
        "/service/notifications",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {settings.REGISTRY_NOTIFY_SECRET}",
    )
    assert response.status_code == 400
