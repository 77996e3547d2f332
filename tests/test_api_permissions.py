"""The permission table: every API endpoint beyond the CRUD of resources (tests/test_api_resources.py) gets
the status each role must get."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from hosts.models import Container, ContainerHost
from projects.models import Membership, Project
from tests.conftest import ROLES, client_for


@dataclass
class Case:
    """One endpoint call and the status each role must get, in the order of ROLES."""

    method: str
    path: str
    statuses: tuple[int, int, int, int, int, int]
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ANON = 401
CLOSED = "http://127.0.0.1:1"
# anonymous, viewer, developer, project_admin, other_project_admin, portal_admin
CASES = [
    Case("get", "/api/v1/systeminfo", (200, 200, 200, 200, 200, 200)),
    Case("get", "/api/v1/systeminfo/ca", (200, 200, 200, 200, 200, 200)),
    Case("put", "/api/v1/users/outsider/admin", (ANON, 403, 403, 403, 403, 204)),
    Case("delete", "/api/v1/users/outsider/admin", (ANON, 403, 403, 403, 403, 204)),
    Case("get", "/api/v1/users/outsider/projects", (ANON, 403, 403, 200, 200, 200)),
    Case(
        "put",
        "/api/v1/users/outsider/projects",
        (ANON, 403, 403, 403, 403, 200),
        [{"project": "alpha", "role": "viewer"}],
    ),
    Case("put", "/api/v1/groups/devs/admin", (ANON, 403, 403, 403, 403, 204)),
    Case(
        "put",
        "/api/v1/groups/devs/projects",
        (ANON, 403, 403, 403, 403, 200),
        [{"project": "beta", "role": "developer"}],
    ),
    Case("get", "/api/v1/identities", (ANON, 403, 403, 200, 200, 200), query={"q": "out"}),
    Case("get", "/api/v1/login-lockouts", (ANON, 403, 403, 403, 403, 200)),
    Case("post", "/api/v1/login-lockouts/unlock", (ANON, 403, 403, 403, 403, 200), {"username": "outsider"}),
    Case("get", "/api/v1/settings", (ANON, 403, 403, 403, 403, 200)),
    Case("patch", "/api/v1/settings", (ANON, 403, 403, 403, 403, 200), {"token_expiration_minutes": 45}),
    Case("get", "/api/v1/audit-logs", (ANON, 403, 403, 403, 403, 200)),
    Case("get", "/api/v1/audit-logs", (ANON, 200, 200, 200, 200, 200), query={"project": "alpha"}),
    Case("get", "/api/v1/tokens", (ANON, 200, 200, 200, 200, 200)),
    Case("post", "/api/v1/tokens", (ANON, 201, 201, 201, 201, 201), {"name": "ci"}),
    Case("get", "/api/v1/jobs", (ANON, 200, 200, 200, 200, 200)),
    Case("get", "/api/v1/schema/", (200, 200, 200, 200, 200, 200)),
    Case("get", "/api/v1/projects/alpha/repositories/alpha/none", (ANON, 404, 404, 404, 404, 404)),
    Case("get", "/api/v1/repositories", (ANON, 200, 200, 200, 200, 200), query={"q": "app"}),
    Case("post", "/api/v1/jobs/reconcile", (ANON, 403, 403, 403, 403, 202)),
    Case("get", "/api/v1/system/gc", (ANON, 403, 403, 403, 403, 200)),
    Case("post", "/api/v1/system/gc", (ANON, 403, 403, 403, 403, 202)),
    Case("get", "/api/v1/system/gc/schedule", (ANON, 403, 403, 403, 403, 200)),
    Case("patch", "/api/v1/system/gc/schedule", (ANON, 403, 403, 403, 403, 200), {"frequency": "daily"}),
    Case("get", "/api/v1/credentials/none", (ANON, 403, 403, 404, 404, 404)),
    Case("delete", "/api/v1/credentials/none", (ANON, 403, 403, 404, 404, 404)),
    Case("get", "/api/v1/certificates", (ANON, 403, 403, 403, 403, 200)),
    Case("get", "/api/v1/certificates/999999", (ANON, 403, 403, 403, 403, 404)),
    Case("delete", "/api/v1/certificates/999999", (ANON, 403, 403, 403, 403, 404)),
    Case("post", "/api/v1/certificates", (ANON, 403, 403, 403, 403, 400), {"address": "127.0.0.1:1", "pem": "x"}),
    Case(
        "post",
        "/api/v1/certificates",
        (ANON, 403, 403, 400, 404, 400),
        {"address": "127.0.0.1:1", "pem": "x", "project": "alpha"},
    ),
    Case("post", "/api/v1/certificates/fetch", (ANON, 403, 403, 502, 502, 502), {"url": "https://127.0.0.1:1"}),
    Case("post", "/api/v1/certificates/check", (ANON, 403, 403, 502, 502, 502), {"url": "https://127.0.0.1:1"}),
    # Verify gets past the permission check only for those allowed: then the closed port answers 502.
    Case(
        "post",
        "/api/v1/registries/verify",
        (ANON, 403, 403, 403, 403, 502),
        {"address": "http://127.0.0.1:1", "insecure": True},
    ),
    Case(
        "post",
        "/api/v1/registries/verify",
        (ANON, 403, 403, 502, 403, 502),
        {"address": "http://127.0.0.1:1", "insecure": True, "project": "alpha"},
    ),
    Case("delete", "/api/v1/projects/alpha/registries/docker-hub", (ANON, 403, 403, 403, 404, 403)),
    Case("get", "/api/v1/projects/alpha/images", (ANON, 200, 200, 200, 404, 200), query={"q": "app"}),
    Case("get", "/api/v1/projects/alpha/images/integrated/alpha/none/tags", (ANON, 404, 404, 404, 404, 404)),
    Case(
        "post",
        "/api/v1/projects/alpha/hosts/verify",
        (ANON, 403, 403, 502, 404, 502),
        {"kind": "docker", "url": "http://127.0.0.1:2"},
    ),
    Case("post", "/api/v1/projects/alpha/hosts/{host}/verify", (ANON, 403, 403, 502, 404, 502)),
    Case("get", "/api/v1/projects/alpha/hosts/999999", (ANON, 404, 404, 404, 404, 404)),
    Case("post", "/api/v1/projects/alpha/containers", (ANON, 403, 400, 400, 404, 400), {"image": "quay.io/x/y"}),
    Case("get", "/api/v1/projects/alpha/containers/999999", (ANON, 404, 404, 404, 404, 404)),
    Case("get", "/api/v1/projects/alpha/containers/jobs/999999", (ANON, 404, 404, 404, 404, 404)),
    Case("get", "/api/v1/projects/alpha/containers/{container}/logs", (ANON, 502, 502, 502, 404, 502)),
    Case("get", "/api/v1/projects/alpha/containers/{container}/stats", (ANON, 502, 502, 502, 404, 502)),
    Case("post", "/api/v1/projects/alpha/containers/{container}/start", (ANON, 403, 202, 202, 404, 202)),
    Case("post", "/api/v1/projects/alpha/containers/{container}/stop", (ANON, 403, 202, 202, 404, 202)),
    Case("post", "/api/v1/projects/alpha/containers/{container}/restart", (ANON, 403, 202, 202, 404, 202)),
    Case("delete", "/api/v1/projects/alpha/containers/{container}", (ANON, 403, 202, 202, 404, 202)),
    # Replication: portal admins manage endpoints and rules; alpha's administrators see and run alpha's rules.
    Case(
        "post",
        "/api/v1/replication/endpoints/ping",
        (ANON, 403, 403, 403, 403, 502),
        {"url": "http://127.0.0.1:1", "kind": "registry"},
    ),
    Case("post", "/api/v1/replication/rules/nightly-web/run", (ANON, 404, 404, 202, 404, 202)),
    Case("get", "/api/v1/replication/rules/nightly-web", (ANON, 404, 404, 200, 404, 200)),
    Case("get", "/api/v1/replication/executions", (ANON, 200, 200, 200, 200, 200), query={"rule": "nightly-web"}),
    Case("get", "/api/v1/replication/executions/{ended}/tasks", (ANON, 404, 404, 200, 404, 200)),
    Case("get", "/api/v1/replication/executions/{ended}/tasks/{task}", (ANON, 404, 404, 200, 404, 200)),
    Case("get", "/api/v1/replication/executions/{ended}/tasks/{task}/log", (ANON, 404, 404, 200, 404, 200)),
    Case("post", "/api/v1/replication/executions/{ended}/retry", (ANON, 404, 404, 202, 404, 202)),
    Case("post", "/api/v1/replication/executions/{running}/stop", (ANON, 404, 404, 403, 404, 202)),
    # Scanning: project and portal admins scan a tag's image, whoever may pull it reads the report; portal admins
    # run Scan Now and load the vulnerability database (an upload is multipart: a JSON body is a 415).
    Case("post", "/api/v1/projects/alpha/repositories/alpha/app/tags/1.0/scan", (ANON, 403, 403, 202, 404, 202)),
    Case("get", "/api/v1/projects/alpha/repositories/alpha/app/tags/1.0/scan", (ANON, 200, 200, 200, 404, 200)),
    Case("get", "/api/v1/projects/alpha/repositories/alpha/app/tags/2.0/scan", (ANON, 404, 404, 404, 404, 404)),
    # Content trust: whoever may pull a repository reads its signatures (a 200 naming the problem when notary has no
    # trust data for it).
    Case("get", "/api/v1/projects/alpha/repositories/alpha/app/signatures", (ANON, 200, 200, 200, 404, 200)),
    Case("get", "/api/v1/projects/alpha/repositories/alpha/none/signatures", (ANON, 404, 404, 404, 404, 404)),
    # Tag details read the registry (tests/integration/test_tag_details.py); here: what is not there is a 404.
    Case("get", "/api/v1/projects/alpha/repositories/alpha/none/tags/1/details", (ANON, 404, 404, 404, 404, 404)),
    Case("get", "/api/v1/projects/beta/repositories/beta/none/tags/1/details", (ANON, 404, 404, 404, 404, 404)),
    Case("get", "/api/v1/scans/all", (ANON, 403, 403, 403, 403, 200)),
    Case("post", "/api/v1/scans/all", (ANON, 403, 403, 403, 403, 202)),
    Case("get", "/api/v1/vulndb", (ANON, 403, 403, 403, 403, 200)),
    Case("post", "/api/v1/vulndb/update", (ANON, 403, 403, 403, 403, 202), {}),
    Case("post", "/api/v1/vulndb/import", (ANON, 403, 403, 403, 403, 415), {}),
    # Scanner registrations are the portal admins'; a project's scanner is read by its members, picked by its admins.
    Case("get", "/api/v1/scanners", (ANON, 403, 403, 403, 403, 200)),
    Case("get", "/api/v1/scanners/wharf", (ANON, 403, 403, 403, 403, 200)),
    Case(
        "post",
        "/api/v1/scanners",
        (ANON, 403, 403, 403, 403, 201),
        {"name": "trivy", "kind": "harbor_adapter", "adapter_url": CLOSED, "authorization": "Bearer x"},
    ),
    Case("patch", "/api/v1/scanners/wharf", (ANON, 403, 403, 403, 403, 200), {"description": "ours"}),
    Case("delete", "/api/v1/scanners/wharf", (ANON, 403, 403, 403, 403, 409)),
    Case("post", "/api/v1/scanners/wharf/test", (ANON, 403, 403, 403, 403, 200)),
    Case("post", "/api/v1/scanners/wharf/default", (ANON, 403, 403, 403, 403, 200)),
    Case("get", "/api/v1/projects/alpha/scanner", (ANON, 200, 200, 200, 404, 200)),
    Case("put", "/api/v1/projects/alpha/scanner", (ANON, 403, 403, 200, 404, 200), {"scanner": "wharf"}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_role_gets_expected_status(world, case: Case, role: str) -> None:
    member = Membership.objects.get(user__username="target").pk
    host = container = 0
    if "{host}" in case.path or "{container}" in case.path:
        # Only these rows get a host (on a closed loopback port): a project holding one cannot be deleted.
        host = ContainerHost.objects.create(project=Project.objects.get(name="alpha"), name="docker-1", url=CLOSED)
        container = Container.objects.create(host=host, container_id="c0ffee" * 10 + "c0ff", name="web").pk
        host = host.pk
    replication = _replication_rows(world) if "/replication/" in case.path else {}
    if case.path.endswith(("/scan", "/signatures")):
        _scanned_tag()
    client = client_for(world[role])
    path = case.path.format(member=member, host=host, container=container, **replication)
    if case.query:
        path += "?" + "&".join(f"{k}={v}" for k, v in case.query.items())
    response = getattr(client, case.method)(path, case.body, format="json")
    expected = case.statuses[ROLES.index(role)]
    assert response.status_code == expected, f"{role}: {case} -> {response.status_code} {response.content[:300]!r}"
    if expected >= 400 and "json" in response.get("Content-Type", ""):
        assert set(response.json()) == {"detail", "errors"}, response.json()


def _replication_rows(world: dict) -> dict[str, int]:
    """An enabled rule of alpha with a failed execution (one failed task) and a pending one: their ids."""
    from portal.core import jobs
    from portal.core.audit import Actor
    from portal.core.models import Job, JobState
    from replication import services
    from replication.models import Endpoint, Rule, Task

    endpoint = Endpoint.objects.create(name="dr-site", kind="registry", url=CLOSED)
    rule = Rule.objects.create(name="nightly-web", project=Project.objects.get(name="alpha"), endpoint=endpoint)
    admin = Actor(world["portal_admin"])
    ended, running = services.run_rule(admin, rule), services.run_rule(admin, rule)
    child = jobs.create_job(Actor.system(), services.TASK, "alpha/app", parent=ended.job, queue=False)
    task = Task.objects.create(execution=ended, job=child, repository="alpha/app", destination="alpha/app")
    Job.objects.filter(pk__in=[ended.job_id, child.pk]).update(state=JobState.FAILED)
    return {"ended": ended.pk, "running": running.pk, "task": task.pk}


def _scanned_tag() -> None:
    """alpha/app:1.0 (scanned: one finding) and alpha/app:2.0 (never scanned)."""
    from registries.models import Repository, Tag
    from scanning.models import ImageScan, ScanState

    repository = Repository.objects.create(project=Project.objects.get(name="alpha"), name="alpha/app")
    for name, digest in (("1.0", "sha256:" + "a" * 64), ("2.0", "sha256:" + "b" * 64)):
        Tag.objects.create(repository=repository, name=name, digest=digest)
    scan = ImageScan.objects.create(digest="sha256:" + "a" * 64, repository="alpha/app", state=ScanState.SUCCEEDED)
    scan.findings.create(vulnerability="CVE-0000-1001", package="ssl", installed_version="1", severity="High", rank=4)


@pytest.fixture(autouse=True)
def _no_docker_hub(db) -> None:
    """The image search rows never reach the internet: Docker Hub answers only its own rows, disabled."""
    from registries.models import ExternalRegistry

    ExternalRegistry.objects.filter(name="docker-hub").update(enabled=False)
