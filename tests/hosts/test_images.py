"""Which images a project may provision: the registry lists, namespaces, the integrated registry, the policy."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.images import EXTERNAL, INTEGRATED, parse_reference, resolve_image
from portal.core.audit import Actor
from portal.core.credentials import create_credential
from portal.core.errors import Forbidden, Invalid
from portal.core.models import CredentialKind, User
from projects.models import Membership, Project, Role
from registries.models import ExternalRegistry
from registries.token import verify

HUB = "https://registry.hub.docker.com"


@pytest.fixture
def portal_address(settings: Any) -> str:
    """The integrated registry's address: the portal's host and port."""
    settings.PORT = 8282
    settings.EXTRA_HOSTNAMES = ["wharf.example"]
    return "wharf.example:8282"


@pytest.fixture
def developer(make_user: Any, alpha: Project) -> User:
    user = make_user("dev")
    Membership.objects.create(project=alpha, user=user, role=Role.DEVELOPER)
    return user


@pytest.fixture
def hub(db: None) -> ExternalRegistry:
    """Docker Hub, enabled by default (a data migration adds it)."""
    registry, _ = ExternalRegistry.objects.get_or_create(
        project=None, name="docker-hub", defaults={"address": HUB, "auth_type": "bearer"}
    )
    registry.enabled = True
    registry.save()
    return registry


def refusal(error: pytest.ExceptionInfo[Exception]) -> str:
    return str(error.value)


def test_reference_without_registry_means_docker_hub() -> None:
    parsed = parse_reference("busybox")
    assert (parsed.host, parsed.repository, parsed.tag) == ("docker.io", "library/busybox", "latest")
    assert str(parse_reference("bitnami/nginx:1.25")) == "docker.io/bitnami/nginx:1.25"
    assert parse_reference("localhost:5000/app").host == "localhost:5000"
    assert parse_reference("myhost/app").host == "docker.io"  # no '.' or ':': a Docker Hub namespace
    digest = "sha256:" + "ab" * 32
    assert parse_reference(f"quay.io/org/app@{digest}").version == digest


@pytest.mark.parametrize("reference", ["", "App:1", "quay.io/x/y:bad tag", "alpine@md5:zz", "a//b"])
def test_malformed_references_are_refused(reference: str) -> None:
    with pytest.raises(Invalid):
        parse_reference(reference)


def test_docker_hub_images_are_allowed_by_default(developer: User, alpha: Project, hub: ExternalRegistry) -> None:
    source = resolve_image(Actor(developer), alpha, "busybox:1.36")
    assert source.kind == EXTERNAL
    assert source.registry == hub
    assert source.full_reference == "docker.io/library/busybox:1.36"
    assert source.auth is None


def test_disabled_docker_hub_is_refused(developer: User, alpha: Project, hub: ExternalRegistry) -> None:
    hub.enabled = False
    hub.save()
    with pytest.raises(Invalid) as error:
        resolve_image(Actor(developer), alpha, "busybox")
    assert refusal(error) == "registry 'docker.io' is not in this project's registry list"


def test_unlisted_registry_is_refused_with_its_name(developer: User, alpha: Project, hub: ExternalRegistry) -> None:
    with pytest.raises(Invalid) as error:
        resolve_image(Actor(developer), alpha, "quay.io/x/y")
    assert refusal(error) == "registry 'quay.io' is not in this project's registry list"
    assert error.value.errors == {"image": ["registry 'quay.io' is not in this project's registry list"]}


def test_namespace_limits_what_a_registry_offers(developer: User, alpha: Project) -> None:
    ExternalRegistry.objects.create(name="vmware", address="https://registry.example.com/vmware", namespace="vmware")
    source = resolve_image(Actor(developer), alpha, "registry.example.com/vmware/photon:3")
    assert source.registry.name == "vmware"
    with pytest.raises(Invalid) as error:
        resolve_image(Actor(developer), alpha, "registry.example.com/other/app")
    assert "outside the namespaces of registry 'registry.example.com'" in refusal(error)


def test_registry_port_must_match(developer: User, alpha: Project) -> None:
    ExternalRegistry.objects.create(name="five", address="https://registry.example.com:5000")
    assert resolve_image(Actor(developer), alpha, "registry.example.com:5000/app").registry.name == "five"
    with pytest.raises(Invalid) as error:
        resolve_image(Actor(developer), alpha, "registry.example.com/app")
    assert refusal(error) == "registry 'registry.example.com' is not in this project's registry list"


def test_project_registry_is_allowed_only_in_its_project(
    developer: User, alpha: Project, beta: Project, portal_admin: User
) -> None:
    ExternalRegistry.objects.create(name="team", address="https://team.example.org", project=alpha)
    assert resolve_image(Actor(developer), alpha, "team.example.org/tools/app").registry.name == "team"
    with pytest.raises(Invalid) as error:
        resolve_image(Actor(portal_admin), beta, "team.example.org/tools/app")
    assert refusal(error) == "registry 'team.example.org' is not in this project's registry list"


def test_disabled_project_registry_is_refused(developer: User, alpha: Project) -> None:
    ExternalRegistry.objects.create(name="team", address="https://team.example.org", project=alpha, enabled=False)
    with pytest.raises(Invalid, match="not in this project's registry list"):
        resolve_image(Actor(developer), alpha, "team.example.org/app")


def test_registry_credential_goes_with_the_pull(developer: User, alpha: Project, portal_admin: User) -> None:
    credential = create_credential(
        Actor(portal_admin), "team-login", CredentialKind.PASSWORD, username="robot", password="s3cret-pass"
    )
    ExternalRegistry.objects.create(name="team", address="https://team.example.org", credential=credential)
    assert resolve_image(Actor(developer), alpha, "team.example.org/app:2").auth is None
    source = resolve_image(Actor(developer), alpha, "team.example.org/app:2", with_auth=True)
    assert source.auth == {"username": "robot", "password": "s3cret-pass", "serveraddress": "team.example.org"}
    assert "s3cret" not in repr(source)


def test_integrated_registry_with_pull_permission(
    developer: User, alpha: Project, beta: Project, portal_address: str
) -> None:
    assert resolve_image(Actor(developer), alpha, f"{portal_address}/alpha/app:1.0").auth is None
    source = resolve_image(Actor(developer), alpha, f"{portal_address}/alpha/app:1.0", with_auth=True)
    assert source.kind == INTEGRATED
    assert source.project == alpha
    assert source.registry_name == "integrated"
    # A pull-only token for exactly that repository, signed by the portal.
    claims = verify(source.auth["registrytoken"])
    assert claims["access"] == [{"type": "repository", "name": "alpha/app", "actions": ["pull"]}]
    assert claims["sub"] == "dev"


def test_integrated_registry_answers_to_every_portal_name(developer: User, alpha: Project, portal_address: str) -> None:
    for host in ("127.0.0.1:8282", "localhost:8282"):
        assert resolve_image(Actor(developer), alpha, f"{host}/alpha/app").kind == INTEGRATED


def test_integrated_registry_without_pull_permission(
    developer: User, alpha: Project, beta: Project, portal_address: str
) -> None:
    with pytest.raises(Forbidden, match="you may not pull images of project 'beta'"):
        resolve_image(Actor(developer), alpha, f"{portal_address}/beta/app:1")


def test_public_project_images_are_open_to_everyone(
    developer: User, alpha: Project, beta: Project, portal_address: str
) -> None:
    beta.public = True
    beta.save()
    assert resolve_image(Actor(developer), alpha, f"{portal_address}/beta/app:1").project == beta


def test_missing_integrated_project_is_named(developer: User, alpha: Project, portal_address: str) -> None:
    with pytest.raises(Invalid, match="project 'nope' does not exist in the integrated registry"):
        resolve_image(Actor(developer), alpha, f"{portal_address}/nope/app")


def test_policy_refusal_gives_its_reason(developer: User, alpha: Project, portal_address: str) -> None:
    alpha.content_trust = True
    alpha.save()
    with pytest.raises(Forbidden) as error:
        resolve_image(Actor(developer), alpha, f"{portal_address}/alpha/app:1.0")
    # Nothing answers at the test settings' registry address, so nobody can vouch for what the tag is.
    assert refusal(error).startswith(
        f"{portal_address}/alpha/app:1.0 may not run: image not signed: the registry could not be asked"
    ), refusal(error)


def test_vulnerability_rule_of_the_image_project_applies(
    developer: User, alpha: Project, beta: Project, portal_address: str
) -> None:
    beta.prevent_vulnerable = True
    beta.save()
    Membership.objects.create(project=beta, user=developer, role=Role.VIEWER)
    with pytest.raises(Forbidden, match="not scanned"):
        resolve_image(Actor(developer), alpha, f"{portal_address}/beta/app:1")


def test_content_trust_refuses_external_images(developer: User, alpha: Project, hub: ExternalRegistry) -> None:
    alpha.content_trust = True
    alpha.save()
    with pytest.raises(Forbidden, match="image not signed"):
        resolve_image(Actor(developer), alpha, "busybox")
