"""Tokens Wharf signs are accepted by the real distribution registry, for exactly the access they grant."""

from __future__ import annotations

import hashlib

import pytest
import requests

from registries.token import Access, issue, parse_scope
from tests.integration.registry import Registry
from tests.integration.registry_fixtures import quiet_registry  # noqa: F401  (the `registry` fixture)

pytestmark = pytest.mark.integration


def _bearer(access: list[Access]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('tester', access, 60)[0]}"}


def test_registry_answers_401_with_the_configured_realm(registry: Registry) -> None:
    response = requests.get(f"{registry.url}/v2/", timeout=5)
    assert response.status_code == 401
    assert 'service="wharf-registry"' in response.headers["WWW-Authenticate"]


def test_push_grant_opens_an_upload_and_nothing_else(registry: Registry) -> None:
    headers = _bearer(parse_scope("repository:proj/app:pull,push"))
    upload = requests.post(f"{registry.url}/v2/proj/app/blobs/uploads/", headers=headers, timeout=5)
    assert upload.status_code == 202, upload.text
    elsewhere = requests.post(f"{registry.url}/v2/other/app/blobs/uploads/", headers=headers, timeout=5)
    assert elsewhere.status_code == 401


def test_pull_only_grant_cannot_push(registry: Registry) -> None:
    headers = _bearer(parse_scope("repository:proj/app:pull"))
    blob = b"layer"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    response = requests.post(
        f"{registry.url}/v2/proj/app/blobs/uploads/?digest={digest}", data=blob, headers=headers, timeout=5
    )
    assert response.status_code == 401


def test_catalog_needs_the_catalog_grant(registry: Registry) -> None:
    assert requests.get(f"{registry.url}/v2/_catalog", headers=_bearer([]), timeout=5).status_code == 401
    granted = _bearer(parse_scope("registry:catalog:*"))
    assert requests.get(f"{registry.url}/v2/_catalog", headers=granted, timeout=5).status_code == 200


def test_scope_parsing() -> None:
    assert parse_scope("repository:a/b:push,pull registry:catalog:* bogus") == [
        Access("repository", "a/b", ("pull", "push")),
        Access("registry", "catalog", ("*",)),
    ]
    assert parse_scope("repository(plugin):x/y:pull") == [Access("repository", "x/y", ("pull",))]
