"""Unit tests of the external registry client: addresses, auth challenges, namespaces, ranking, and Docker Hub's
search and tags through a fake transport (tests never reach the internet)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from portal.core.errors import Invalid
from registries.client_auth import Login, parse_challenge
from registries.external import DOCKER_HUB, ExternalRegistryClient, in_namespace, parse_address, relevance
from registries.models import ExternalRegistry


class FakeTransport(BaseAdapter):
    """Answers requests from a table of (host, path) -> handler; anything else fails the test."""

    def __init__(self, routes: dict) -> None:
        super().__init__()
        self.routes = routes
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.seen.append(request)
        parts = urlsplit(request.url)
        handler = self.routes.get((parts.netloc, parts.path))
        assert handler is not None, f"unexpected request to {request.url}"
        status, body, headers = handler(request)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers.update({"Content-Type": "application/json", **headers})
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to close."""


def fake_session(routes: dict) -> tuple[requests.Session, FakeTransport]:
    transport = FakeTransport(routes)
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session, transport


def test_address_is_normalized_with_its_namespace() -> None:
    parsed = parse_address("Registry.Example:443/VMware/")
    assert (parsed.base_url, parsed.namespace, parsed.normalized) == (
        "https://registry.example",
        "vmware",
        "https://registry.example/vmware",
    )
    assert parse_address("https://r.example:5443").normalized == "https://r.example:5443"


def test_plain_http_address_needs_insecure() -> None:
    with pytest.raises(Invalid, match="tick insecure"):
        parse_address("http://r.example:5000")
    assert parse_address("http://r.example:5000", insecure=True).base_url == "http://r.example:5000"


def test_bad_addresses_are_refused() -> None:
    for address in ("", "ftp://r.example", "https://r.example/Bad Name", "https://r.example:port", "https://[::1:5000"):
        with pytest.raises(Invalid):
            parse_address(address)


def test_bearer_challenge_is_parsed() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }


def test_basic_challenge_and_empty_header() -> None:
    assert parse_challenge('Basic realm="Registry Realm"') is not None
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    assert parse_challenge("") is None


def test_namespace_filter() -> None:
    assert in_namespace("vmware/photon", "vmware")
    assert not in_namespace("vmwarex/photon", "vmware")
    assert not in_namespace("other/vmware", "vmware")
    assert in_namespace("anything/at/all", "")


def test_ranking_exact_then_prefix_then_substring_then_name() -> None:
    names = ["x/nginx-proxy", "a/my-nginx", "library/nginx", "nginx", "b/nginx-alpine", "z/unrelated"]
    ranked = sorted(names, key=lambda name: relevance(name, "nginx"))
    assert ranked == ["nginx", "library/nginx", "b/nginx-alpine", "x/nginx-proxy", "a/my-nginx", "z/unrelated"]


def test_namespace_refuses_repositories_outside_it() -> None:
    client = ExternalRegistryClient("https://r.example/vmware", session=requests.Session())
    with pytest.raises(Invalid, match="outside the namespace 'vmware'"):
        client.tags("library/busybox")


def test_login_is_never_printed() -> None:
    assert "hunter2" not in repr(Login("robot", "hunter2"))


def test_docker_hub_search_uses_its_search_api_through_the_transport() -> None:
    def search(request: requests.PreparedRequest) -> tuple[int, dict, dict]:
        assert parse_qs(urlsplit(request.url).query)["q"] == ["nginx"]
        results = [
            {"name": "bitnami/nginx", "description": "Bitnami nginx", "star_count": 200, "is_official": False},
            {"name": "nginx", "description": "Official build of Nginx.", "star_count": 20000, "is_official": True},
        ]
        return 200, {"num_results": 2, "query": "nginx", "results": results}, {}

    session, transport = fake_session({("index.docker.io", "/v1/search"): search})
    found = ExternalRegistryClient(DOCKER_HUB, session=session).search("nginx")
    assert [item["repository"] for item in found] == ["nginx", "bitnami/nginx"]
    assert found[0] == {
        "repository": "nginx",
        "description": "Official build of Nginx.",
        "stars": 20000,
        "official": True,
    }
    assert [urlsplit(r.url).netloc for r in transport.seen] == ["index.docker.io"]


def test_docker_hub_namespace_applies_to_its_search() -> None:
    results = [{"name": "nginx"}, {"name": "bitnami/nginx"}]
    routes = {("index.docker.io", "/v1/search"): lambda request: (200, {"results": results}, {})}
    session, _ = fake_session(routes)
    found = ExternalRegistryClient(f"{DOCKER_HUB}/library", session=session).search("nginx")
    assert [item["repository"] for item in found] == ["nginx"]


def test_docker_hub_tags_follow_the_bearer_challenge() -> None:
    challenge = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'
    )

    def tags(request: requests.PreparedRequest) -> tuple[int, dict, dict]:
        if request.headers.get("Authorization") != "Bearer hub-token":
            return 401, {"errors": []}, {"WWW-Authenticate": challenge}
        return 200, {"name": "library/nginx", "tags": ["latest", "1.27"]}, {}

    def token(request: requests.PreparedRequest) -> tuple[int, dict, dict]:
        query = parse_qs(urlsplit(request.url).query)
        assert query == {"service": ["registry.docker.io"], "scope": ["repository:library/nginx:pull"]}
        return 200, {"token": "hub-token"}, {}

    routes = {
        ("registry.hub.docker.com", "/v2/library/nginx/tags/list"): tags,
        ("auth.docker.io", "/token"): token,
    }
    session, _ = fake_session(routes)
    assert ExternalRegistryClient(DOCKER_HUB, session=session).tags("nginx") == ["1.27", "latest"]


def test_catalog_follows_link_pages_and_is_cached(settings) -> None:
    from django.core.cache import cache

    cache.clear()
    pages = {
        "": (
            200,
            {"repositories": ["a/one", "vmware/two"]},
            {"Link": '</v2/_catalog?last=vmware%2Ftwo&n=1000>; rel="next"'},
        ),
        "vmware/two": (200, {"repositories": ["vmware/three"]}, {}),
    }

    def catalog(request: requests.PreparedRequest) -> tuple[int, dict, dict]:
        return pages[parse_qs(urlsplit(request.url).query).get("last", [""])[0]]

    session, transport = fake_session({("r.example", "/v2/_catalog"): catalog})
    client = ExternalRegistryClient("https://r.example/vmware", session=session, api_version="v2")
    assert client.search("t") == [{"repository": "vmware/three"}, {"repository": "vmware/two"}]
    assert client.search("three") == [{"repository": "vmware/three"}]
    assert len(transport.seen) == 2  # the second search used the cached catalog


@pytest.mark.django_db
def test_docker_hub_is_a_default_enabled_global_registry() -> None:
    hub = ExternalRegistry.objects.get(address=DOCKER_HUB)
    assert hub.is_global and hub.enabled


def test_artifactory_style_server_is_found_through_its_catalog() -> None:
    routes = {
        ("artifactory.example", "/v2/"): lambda request: (404, {}, {}),
        ("artifactory.example", "/v2/_catalog"): lambda request: (200, {"repositories": ["docker-local/app"]}, {}),
    }
    session, transport = fake_session(routes)
    found = ExternalRegistryClient("https://artifactory.example", session=session).detect()
    assert (found.api_version, found.auth_type) == ("v2", "none")
    assert [urlsplit(r.url).path for r in transport.seen] == ["/v2/", "/v2/_catalog"]


def test_server_that_is_no_registry_is_named_so() -> None:
    from registries.external import NotARegistry

    routes = {(host, path): lambda request: (404, {}, {}) for host, path in [
        ("web.example", "/v2/"), ("web.example", "/v2/_catalog"), ("web.example", "/v1/_ping")
    ]}  # fmt: skip
    session, _ = fake_session(routes)
    with pytest.raises(NotARegistry, match="not as a Docker registry"):
        ExternalRegistryClient("https://web.example", session=session).detect()
