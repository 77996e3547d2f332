"""Attacks found on the running portal, reproduced against the live one (gunicorn over HTTPS, the real
registry, a real worker) and now refused."""

from __future__ import annotations

import pytest

from tests.integration import test_registry_push_pull as live
from tests.integration.images import push_image
from tests.integration.test_registry_push_pull import People, Portal, RawConnection, dev_token

# The push/pull tests' live portal and people, as this module's fixtures.
portal = live.portal
people = live.people

# Forms of /v2/alpha/app/manifests/1.0 that a registry cleaning its paths serves as that manifest,
# but whose first segment or reference is not what the portal would judge by.
PATH_TRICKS = [
    "/v2/library/../alpha/app/manifests/1.0",
    "/v2/alpha/app/./manifests/1.0",
    "/v2/alpha/app/manifests/./1.0",
    "/v2/library/%2e%2e/alpha/app/manifests/1.0",
    "/v2/library/%2E%2E/alpha/app/manifests/1.0",
    "/v2/alpha%2fapp/manifests/1.0",
    "/v2/alpha//app/manifests/1.0",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_content_trust_is_not_bypassed_by_a_path_that_is_not_canonical(
    portal: Portal, people: People, path: str
) -> None:
    push_image(portal.registry.url, "alpha/app", ["1.0"])
    people.alpha.content_trust = True
    people.alpha.save()
    token = dev_token(portal, people, "repository:alpha/app:pull")
    connection = RawConnection(portal)
    try:
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        head = f"Host: {portal.host}\nAuthorization: Bearer {token}\nAccept: {accept}"
        judged = connection.request(f"GET /v2/alpha/app/manifests/1.0 HTTP/1.1\n{head}\n")
        assert judged.status == 412, judged.body[:300]
        tricked = connection.request(f"GET {path} HTTP/1.1\n{head}\n")
    finally:
        connection.close()
    assert tricked.status == 400, f"{path} -> {tricked.status}: {tricked.body[:300]!r}"
    assert b"NAME_INVALID" in tricked.body and b"not canonical" in tricked.body
