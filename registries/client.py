"""The portal's client of the integrated registry (distribution's HTTP API v2), authenticated with system tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
from django.conf import settings

from portal.core.errors import RemoteUnreachable
from registries.token import Access, system_token

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_V1)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)
# Seconds to connect, then to wait for each read.
TIMEOUT = (5, 60)
PAGE = 1000
# An index refers to a handful of platform manifests; more than this is not an image we size.
MAX_INDEX_ENTRIES = 64


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry stores it: its bytes, media type and digest."""

    content: bytes
    media_type: str
    digest: str

    def document(self) -> dict:
        """The manifest parsed as JSON."""
        return json.loads(self.content)


def _pull(repository: str) -> list[Access]:
    return [Access("repository", repository, ("pull",))]


def _write(repository: str) -> list[Access]:
    return [Access("repository", repository, ("delete", "pull", "push"))]


class RegistryClient:
    """Calls the registry at settings.REGISTRY_URL; network faults become RemoteUnreachable with the URL."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.REGISTRY_URL).rstrip("/")
        self.session = requests.Session()

    def _request(self, method: str, path: str, access: list[Access], **kwargs: object) -> requests.Response:
        """One authenticated request; unreachable or 5xx answers raise RemoteUnreachable."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {system_token(access)}", **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise RemoteUnreachable(f"the registry at {self.base_url} did not answer: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            # A 5xx may pass; a refused system token will be refused again.
            raise RemoteUnreachable(
                f"the registry at {self.base_url} answered {method} {path} with "
                f"{response.status_code}: {response.text[:200]}",
                transient=response.status_code >= 500,
            )
        return response

    def _pages(self, path: str, key: str, access: list[Access]) -> Iterator[str]:
        """Follow the Link header of a paginated list, yielding the entries under `key`."""
        next_path: str | None = f"{path}?n={PAGE}"
        while next_path:
            response = self._request("GET", next_path, access)
            if response.status_code == 404:
                return
            self._expect(response, 200, f"list {path}")
            yield from response.json().get(key) or []
            link = response.links.get("next", {}).get("url")
            next_path = urljoin(f"{self.base_url}{path}", link) if link else None

    def _expect(self, response: requests.Response, status: int | tuple[int, ...], what: str) -> None:
        """Raise RemoteUnreachable naming the operation when the registry answered otherwise."""
        statuses = (status,) if isinstance(status, int) else status
        if response.status_code not in statuses:
            raise RemoteUnreachable(f"the registry refused to {what}: {response.status_code} {response.text[:200]}")

    def catalog(self) -> Iterator[str]:
        """Every repository name the registry holds."""
        return self._pages("/v2/_catalog", "repositories", [Access("registry", "catalog", ("*",))])

    def tags(self, repository: str) -> list[str]:
        """The repository's tags (empty when the registry does not know the repository)."""
        return list(self._pages(f"/v2/{repository}/tags/list", "tags", _pull(repository)))

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of a tag or digest, byte for byte, or None when there is none."""
        response = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", _pull(repository), headers={"Accept": ACCEPT}
        )
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"read manifest {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest", "")
        return Manifest(response.content, response.headers.get("Content-Type", ""), digest)

    def head_manifest(self, repository: str, reference: str) -> tuple[str, str] | None:
        """(digest, media type) of a tag or digest, or None when there is none."""
        response = self._request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", _pull(repository), headers={"Accept": ACCEPT}
        )
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"look up {repository}:{reference}")
        return response.headers.get("Docker-Content-Digest", ""), response.headers.get("Content-Type", "")

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        """Store the manifest's exact bytes under the tag; returns the digest the registry computed."""
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            _write(repository),
            data=manifest.content,
            headers={"Content-Type": manifest.media_type},
        )
        self._expect(response, 201, f"tag {repository}:{tag}")
        return response.headers.get("Docker-Content-Digest", "")

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (which untags every tag on it); False when it was already gone."""
        response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}", _write(repository))
        if response.status_code == 404:
            return False
        self._expect(response, 202, f"delete {repository}@{digest}")
        return True

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob."""
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", _pull(repository))
        if response.status_code == 404:
            return False
        self._expect(response, 200, f"look up blob {repository}@{digest}")
        return True

    def image_size(self, repository: str, manifest: Manifest) -> int:
        """Bytes of the image: config plus layers, summed over the platform manifests of an index."""
        document = manifest.document()
        if manifest.media_type in INDEX_TYPES or "manifests" in document:
            total = 0
            for entry in document.get("manifests", [])[:MAX_INDEX_ENTRIES]:
                child = self.get_manifest(repository, entry["digest"])
                total += self.image_size(repository, child) if child else int(entry.get("size", 0))
            return total
        parts = [document.get("config") or {}, *document.get("layers", [])]
        return sum(int(part.get("size", 0)) for part in parts)
