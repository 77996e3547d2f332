"""Content trust end to end: the stock Docker CLI signs through real notary behind the portal's token service, and the
portal serves (and provisions) an image of a content-trust project only when a verified signature names the digest
the registry serves for it.

One live portal (gunicorn, a real registry, a Celery worker), real notary-server and notary-signer on PostgreSQL as
the launcher starts them, and a real dockerd whose CLI pushes and pulls and on which containers are provisioned.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from rest_framework.test import APIClient

from portal.core.audit import Actor
from portal.core.certificates import pki_paths
from portal.core.models import JobState, User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
from projects.policy import check
from registries import content_trust
from registries.models import TrustCollection
from registries.token import Access, system_token
from tests.integration.dockerd import Dockerd
from tests.integration.notary import Notary, running_notary
from tests.integration.slapd import free_port
from tests.integration.test_containers import (  # noqa: F401  (fixtures)
    alpha_host,
    daemon,
    dev,
    provision,
)
from tests.integration.test_registry_push_pull import (  # noqa: F401  (fixtures)
    Portal,
    build,
    live_portal,
    login,
    refused,
    rootfs,
)

pytestmark = pytest.mark.integration
PASSPHRASE = "wharf-test-passphrase"


@pytest.fixture(scope="module")
def notary_address() -> str:
    """Where notary listens: chosen first, since the portal is started knowing where to read trust data."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory, notary_address: str) -> Iterator[Portal]:
    """The live portal, reading trust data from the notary below."""
    with live_portal(
        tmp_path_factory.mktemp("portal"), WHARF_NOTARY_INTERNAL_URL=f"https://{notary_address}"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def notary(portal: Portal, tmp_path_factory: pytest.TempPathFactory, notary_address: str) -> Iterator[Notary]:
    with running_notary(portal.host, tmp_path_factory.mktemp("notary"), listen=notary_address) as server:
        yield server


@pytest.fixture
def trusted(
    alpha_host: object,  # noqa: F811
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    notary: Notary,
    settings: object,
) -> Iterator[Callable[..., str]]:
    """Docker with content trust towards this notary (its CA where the CLI looks for it), as the logged-in user;
    project alpha (developer `dev`, viewer `viewer`) has content trust on and the daemon as its host. Notary keeps
    its data for the module while the database is emptied after each test, so every test signs a repository of
    its own."""
    host_dir = daemon.config_dir / "tls" / notary.url.removeprefix("https://")
    host_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki_paths().ca_cert, host_dir / "ca.crt")
    settings.REGISTRY_URL = portal.registry.url
    Project.objects.filter(name="alpha").update(content_trust=True)
    environment = {
        "DOCKER_CONTENT_TRUST": "1",
        "DOCKER_CONTENT_TRUST_SERVER": notary.url,
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": PASSPHRASE,
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": PASSPHRASE,
    }

    def docker(*args: str, ok: bool = True) -> str:
        result = daemon.run(*args, env=environment)
        output = result.stdout + result.stderr
        if ok:
            assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{output}"
        return output if result.returncode == 0 or not ok else ""

    docker.run = lambda *args: daemon.run(*args, env=environment)  # type: ignore[attr-defined]
    yield docker
    shutil.rmtree(daemon.config_dir / "trust", ignore_errors=True)


def as_user(daemon: Dockerd, portal: Portal, username: str) -> None:  # noqa: F811
    """docker login as the user (an API token as the password)."""
    login(daemon, portal, username, create_token(Actor(User.objects.get(username=username)), "docker")[1])


def push_unsigned(daemon: Dockerd, rootfs: Path, reference: str, change: str = "") -> None:  # noqa: F811
    """Import busybox as the reference (a config change makes another digest) and push it without signing."""
    if change:
        daemon.ok("import", "--change", change, str(rootfs), reference)
    else:
        build(daemon, rootfs, reference)
    daemon.ok("push", reference)
    daemon.ok("rmi", reference)


def test_signed_push_then_trusted_and_plain_pulls_succeed(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
) -> None:
    image = f"{portal.host}/alpha/app:1.0"
    as_user(daemon, portal, "dev")
    build(daemon, rootfs, image)
    output = trusted("push", image)
    assert "Signing and pushing trust metadata" in output, output
    assert TrustCollection.objects.filter(gun=f"{portal.host}/alpha/app", repository="alpha/app").exists()
    daemon.ok("rmi", image)

    # docker resolves the tag through notary, then pulls the signed digest; the portal verifies that digest.
    assert "Pull (1 of 1)" in trusted("pull", image) or "Status: Downloaded" in trusted("pull", image)
    daemon.ok("rmi", image)
    # Without content trust on the client, the portal still checks: the tag's manifest is signed, so it is served.
    daemon.ok("pull", image)

    # The portal's own verdict and what it verified.
    assert check(Project.objects.get(name="alpha"), "alpha/app", "1.0").allowed
    signatures = content_trust.signatures("alpha/app")
    digest = daemon.ok("image", "inspect", "--format", "{{index .RepoDigests 0}}", image).strip().split("@")[1]
    assert signatures.targets["1.0"].digest == digest
    assert signatures.of("1.0", digest).signed


def test_unsigned_image_is_refused_with_the_reason(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
) -> None:
    image = f"{portal.host}/alpha/plain:1"
    as_user(daemon, portal, "dev")
    push_unsigned(daemon, rootfs, image)
    output = refused(daemon.run("pull", image), "image not signed")
    assert "no trust data" in output, output
    # With content trust on the client, docker itself refuses: notary has nothing for the tag.
    refused(trusted.run("pull", image), "trust data")  # type: ignore[attr-defined]
    verdict = check(Project.objects.get(name="alpha"), "alpha/plain", "1")
    assert not verdict.allowed and verdict.reason.startswith("image not signed: no trust data"), verdict.reason


def test_tag_pushed_again_without_signing_is_refused(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
) -> None:
    image = f"{portal.host}/alpha/repushed:2.0"
    as_user(daemon, portal, "dev")
    build(daemon, rootfs, image)
    trusted("push", image)
    daemon.ok("rmi", image)
    daemon.ok("pull", image)
    daemon.ok("rmi", image)

    # The same tag, another image, pushed without signing: notary still vouches for the old digest only.
    push_unsigned(daemon, rootfs, image, change="ENV REBUILT=1")
    refused(daemon.run("pull", image), "image not signed", "signed for another digest")
    verdict = check(Project.objects.get(name="alpha"), "alpha/repushed", "2.0")
    assert not verdict.allowed and "signed for another digest" in verdict.reason, verdict.reason


def test_viewer_cannot_sign(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
) -> None:
    image = f"{portal.host}/alpha/signme:1"
    as_user(daemon, portal, "dev")
    build(daemon, rootfs, image)
    daemon.ok("push", image)
    daemon.ok("logout", portal.host)
    as_user(daemon, portal, "viewer")
    # The viewer may pull the image, but notary's token grants them no push: it refuses to take their signature.
    refused(trusted.run("trust", "sign", image), "not authorized", "401")  # type: ignore[attr-defined]
    assert not content_trust.signatures("alpha/signme").targets
    assert not TrustCollection.objects.filter(repository="alpha/signme").exists()


def test_provisioning_refuses_unsigned_images_and_runs_signed_ones(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
    dev: APIClient,  # noqa: F811
) -> None:
    as_user(daemon, portal, "dev")
    unsigned = f"{portal.host}/alpha/plain:2"
    push_unsigned(daemon, rootfs, unsigned)
    response = provision(dev, image=unsigned, name="unsigned")
    assert response.status_code == 403
    assert "image not signed: no trust data" in response.json()["detail"], response.json()
    assert "unsigned" not in daemon.ok("ps", "--all", "--format", "{{.Names}}")

    signed = f"{portal.host}/alpha/runs:3.0"
    build(daemon, rootfs, signed)
    trusted("push", signed)
    daemon.ok("rmi", signed)
    response = provision(dev, image=signed, name="signed", command="true")
    assert response.status_code in (201, 202), response.json()
    job = response.json()["job"]
    assert job["state"] == JobState.SUCCEEDED, f"{job['error']}\n{job['log']}"


def test_project_without_content_trust_is_unaffected(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    rootfs: Path,  # noqa: F811
) -> None:
    free = Project.objects.create(name="free")
    Membership.objects.create(project=free, user=User.objects.get(username="dev"), role=Role.DEVELOPER)
    image = f"{portal.host}/free/app:1"
    as_user(daemon, portal, "dev")
    push_unsigned(daemon, rootfs, image)
    daemon.ok("pull", image)
    assert check(free, "free/app", "1").allowed


def test_deleting_trust_data_removes_it_from_notary(
    trusted: Callable[..., str],
    daemon: Dockerd,  # noqa: F811
    portal: Portal,
    notary: Notary,
    rootfs: Path,  # noqa: F811
) -> None:
    image = f"{portal.host}/alpha/gone:1"
    as_user(daemon, portal, "dev")
    build(daemon, rootfs, image)
    trusted("push", image)
    gun = f"{portal.host}/alpha/gone"
    token = system_token([Access("repository", gun, ("pull",))], audience="wharf-notary")

    def root_status() -> int:
        return requests.get(
            f"{notary.url}/v2/{gun}/_trust/tuf/root.json",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(pki_paths().ca_cert),
            timeout=10,
        ).status_code

    assert root_status() == 200
    assert content_trust.delete_trust_data("alpha/gone") == []
    assert root_status() == 404
    assert not TrustCollection.objects.filter(repository="alpha/gone").exists()
