"""Every API resource, list / get / create / update / delete under every role (tests/api_resources.py).

A new resource is one `Resource(...)` here; its actions beyond CRUD (verify, start, admin, ...)
stay in the permission table of tests/test_api_permissions.py.
"""

from __future__ import annotations

import pytest

from hosts.models import Container, ContainerHost
from portal.core import credentials
from portal.core.audit import Actor
from portal.core.models import Credential, Group, User
from projects.models import Membership, Project
from registries.models import ExternalRegistry, Repository, Tag
from replication import services as replication
from replication.models import Endpoint, Execution, Rule
from scanning.models import AllowlistEntry
from tests.api_resources import ADMIN_ONLY, PROJECT_READ, PROJECT_WRITES, Resource, call, check, statuses
from tests.conftest import ROLES, client_for

CLOSED = "http://127.0.0.1:1"
ALPHA = "/api/v1/projects/alpha"
# A resource whose create connects to the address first: the closed port answers 502 and nothing is saved.
CONNECTS_FIRST = {**PROJECT_WRITES, "create": statuses(502)}
# A resource of the whole portal that project administrators read too and only portal administrators change.
ADMIN_MANAGED = {
    "list": statuses(200, other_project_admin=200),
    "get": statuses(200, other_project_admin=200),
    **{op: ADMIN_ONLY[op] for op in ("create", "update", "delete")},
}
# The status of a successful update and delete.
WRITTEN = {"update": 200, "delete": 204}
# Rows addressed by their name, in the URL and in the answer.
BY_NAME = {"key": lambda row: row.name, "key_field": "name"}


def _alpha() -> Project:
    return Project.objects.get(name="alpha")


def _host(world: dict) -> ContainerHost:
    # On a closed loopback port: reads and edits need no daemon, and nothing leaves the machine.
    return ContainerHost.objects.create(project=_alpha(), name="docker-1", url=CLOSED)


def _credential(world: dict, project: Project | None = None) -> Credential:
    admin = Actor(world["portal_admin"])
    return credentials.create_credential(
        admin, "robot", "password", username="robot", password="S3cret-pw", project=project
    )


def _repository(world: dict) -> Repository:
    return Repository.objects.create(project=_alpha(), name="alpha/app")


def _tag(world: dict) -> Tag:
    return Tag.objects.create(repository=_repository(world), name="1.0", digest="sha256:" + "a" * 64)


def _endpoint(world: dict) -> Endpoint:
    # On a closed loopback port: reads need no registry; saving tests the connection, which answers 502.
    return Endpoint.objects.create(name="dr-site", kind="registry", url=CLOSED)


def _rule(world: dict, enabled: bool = False) -> Rule:
    return Rule.objects.create(name="nightly-web", project=_alpha(), endpoint=_endpoint(world), enabled=enabled)


def _execution(world: dict) -> Execution:
    return replication.run_rule(Actor(world["portal_admin"]), _rule(world, enabled=True))


# Replication rules and executions: a project's administrators see (and run) their project's; the others, nothing.
PROJECT_ADMINS_SEE = statuses(200, viewer=404, developer=404)
PROJECT_ADMINS_SEE_ONLY = statuses(200, viewer=404, developer=404, project_admin=403)

RESOURCES = [
    Resource(
        "projects",
        "/api/v1/projects",
        Project,
        lambda world: _alpha(),
        **BY_NAME,
        expect={
            "list": statuses(200, viewer=200, developer=200, other_project_admin=200),
            "get": PROJECT_READ,
            "create": statuses(201, project_admin=403, other_project_admin=403),
            "update": statuses(200),
            "delete": statuses(204, project_admin=403),
        },
        create={"name": "gamma", "public": True},
        update={"public": True, "severity": "critical"},
    ),
    Resource(
        "members",
        f"{ALPHA}/members",
        Membership,
        lambda world: Membership.objects.get(user__username="target"),
        expect={"list": PROJECT_READ, "get": PROJECT_READ, **PROJECT_WRITES},
        create={"user": "outsider", "role": "viewer"},
        update={"role": "developer"},
        rows=lambda: _alpha().memberships.all(),
    ),
    Resource(
        "users",
        "/api/v1/users",
        User,
        lambda world: world["outsider"],
        key=lambda row: row.username,
        key_field="username",
        expect=ADMIN_MANAGED,
        create={"username": "newbie", "password": "Long-enough-42", "email": "n@example.test"},
        update={"email": "o@example.test", "first_name": "Otto"},
    ),
    Resource(
        "groups",
        "/api/v1/groups",
        Group,
        lambda world: Group.objects.get(name="devs"),
        **BY_NAME,
        expect=ADMIN_MANAGED,
        create={"name": "ops", "members": ["outsider"]},
        update={"members": ["outsider"]},
    ),
    # A global credential: only portal administrators see, change or use it (issue 11, finding 1).
    Resource(
        "global credentials",
        "/api/v1/credentials",
        Credential,
        _credential,
        **BY_NAME,
        expect={
            "list": statuses(200, other_project_admin=200),
            "get": statuses(200, project_admin=404),
            **{op: statuses(code, project_admin=404, other_project_admin=404) for op, code in WRITTEN.items()},
            "create": ADMIN_ONLY["create"],
        },
        list_visible=ADMIN_ONLY["get"],
        create={"name": "ci", "kind": "password", "username": "robot", "password": "Registry-Passw0rd"},
        update={"username": "robot-2"},
    ),
    # A project's own credential: its administrators manage and use it.
    Resource(
        "project credentials",
        "/api/v1/credentials",
        Credential,
        lambda world: _credential(world, project=_alpha()),
        **BY_NAME,
        expect={"list": statuses(200, other_project_admin=200), "get": statuses(200), **PROJECT_WRITES},
        create={
            "name": "ci",
            "kind": "password",
            "username": "robot",
            "password": "Registry-Passw0rd",
            "project": "alpha",
        },
        update={"username": "robot-2"},
    ),
    Resource(
        "global registries",
        "/api/v1/registries",
        ExternalRegistry,
        lambda world: ExternalRegistry.objects.get(name="docker-hub"),
        **BY_NAME,
        expect={op: ADMIN_ONLY[op] for op in ("list", "get", "update", "delete")},
        update={"enabled": False},
    ),
    Resource(
        "project registries",
        f"{ALPHA}/registries",
        ExternalRegistry,
        lambda world: ExternalRegistry.objects.create(project=_alpha(), name="mirror", address=CLOSED, insecure=True),
        **BY_NAME,
        # Creating one verifies the address first: the closed port answers 502 and nothing is saved.
        expect={"list": PROJECT_READ, "get": PROJECT_READ, **CONNECTS_FIRST},
        create={"name": "other", "address": CLOSED, "insecure": True},
        update={"name": "mirror-2", "enabled": False},
        rows=lambda: ExternalRegistry.objects.filter(project__name="alpha"),
    ),
    Resource(
        "hosts",
        f"{ALPHA}/hosts",
        ContainerHost,
        _host,
        # Adding one connects first: the closed port answers 502 and nothing is saved.
        expect={"list": PROJECT_READ, "get": PROJECT_READ, **CONNECTS_FIRST},
        create={"name": "docker-2", "kind": "docker", "url": "http://127.0.0.1:2"},
        update={"name": "renamed"},
    ),
    Resource(
        "containers",
        f"{ALPHA}/containers",
        Container,
        lambda world: Container.objects.create(host=_host(world), container_id="c0ffee" * 10 + "c0ff", name="web"),
        expect={"list": PROJECT_READ, "get": PROJECT_READ},
    ),
    Resource(
        "repositories",
        f"{ALPHA}/repositories",
        Repository,
        _repository,
        **BY_NAME,
        expect={"list": PROJECT_READ, "get": PROJECT_READ},
    ),
    Resource(
        "tags",
        f"{ALPHA}/repositories/alpha/app/tags",
        Tag,
        _tag,
        **BY_NAME,
        expect={"list": PROJECT_READ, "get": PROJECT_READ},
    ),
    Resource(
        "replication endpoints",
        "/api/v1/replication/endpoints",
        Endpoint,
        _endpoint,
        **BY_NAME,
        # Saving tests the connection first: the closed port answers 502 and nothing is saved.
        expect={
            **ADMIN_ONLY,
            **dict.fromkeys(("create", "update"), statuses(502, project_admin=403, other_project_admin=403)),
        },
        create={"name": "dr-2", "kind": "registry", "url": CLOSED},
        update={"verify_remote_cert": False},
    ),
    Resource(
        "replication rules",
        "/api/v1/replication/rules",
        Rule,
        _rule,
        **BY_NAME,
        expect={
            "list": statuses(200, viewer=200, developer=200, other_project_admin=200),
            "get": PROJECT_ADMINS_SEE,
            "create": statuses(201, project_admin=403, other_project_admin=403),
            "update": PROJECT_ADMINS_SEE_ONLY,
            "delete": statuses(204, viewer=404, developer=404, project_admin=403),
        },
        create={"name": "r2", "project": "alpha", "endpoint": "dr-site", "enabled": False, "tag_filter": "1.*"},
        update={"description": "edited", "tag_filter": "2.*"},
    ),
    Resource(
        "system CVE allowlist",
        "/api/v1/system/cve-allowlist",
        AllowlistEntry,
        lambda world: AllowlistEntry.objects.create(cve="CVE-0000-0001"),
        key=lambda row: row.cve,
        key_field="cve",
        expect={op: ADMIN_ONLY[op] for op in ("list", "get", "create", "delete")},
        create={"cve": "CVE-0000-0002", "expires": None},
        rows=lambda: AllowlistEntry.objects.filter(project__isnull=True),
    ),
    # A project's CVE allowlist: its members read it, its administrators change it.
    Resource(
        "project CVE allowlist",
        f"{ALPHA}/cve-allowlist",
        AllowlistEntry,
        lambda world: AllowlistEntry.objects.create(project=_alpha(), cve="CVE-0000-0001"),
        key=lambda row: row.cve,
        key_field="cve",
        expect={"list": PROJECT_READ, "get": PROJECT_READ, "create": statuses(201), "delete": statuses(204)},
        create={"cve": "CVE-0000-0002", "expires": "2099-12-31"},
        rows=lambda: AllowlistEntry.objects.filter(project__name="alpha"),
    ),
    # Executions are paged by cursor (no count), and tasks live under one: their lists are in the permission table.
    Resource(
        "replication executions",
        "/api/v1/replication/executions",
        Execution,
        _execution,
        expect={"get": PROJECT_ADMINS_SEE},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("resource", "op"),
    [(resource, op) for resource in RESOURCES for op in resource.operations()],
    ids=lambda value: str(value),
)
def test_resource_under_role(world, resource: Resource, op: str, role: str) -> None:
    row = resource.make(world)
    client = client_for(world[role])
    check(resource, op, role, call(resource, op, client, row), client_for(world["portal_admin"]))
