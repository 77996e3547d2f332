"""Every list API and list page runs as many SQL queries for 30 rows as for 3, as a portal admin and as a member.

The speed of each list at a real site's size is measured by bench/scale.py; this keeps the part a test can
check without timing anything: no list issues queries per row (no N+1), whatever the rows hold.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from itertools import count

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hosts.models import Container, ContainerHost, ContainerState, HostSample, HostState
from portal.core.certificates import pki_paths
from portal.core.credentials import certificate_info
from portal.core.models import (
    AuditEvent,
    Credential,
    CredentialKind,
    Group,
    Job,
    JobLogLine,
    SystemSettings,
    TrustedCertificate,
    User,
)
from portal.core.secrets import encrypt
from projects.models import Membership, Project, Role
from registries.models import DailyPulls, ExternalRegistry, Repository, Tag
from registries.services import GARBAGE_COLLECTION
from replication.models import Endpoint, Execution, Rule, Task
from replication.services import EXECUTION, TASK
from scanning.models import AllowlistEntry, FeedSource, ImageScan, ScanState, Severity
from tests.conftest import PASSWORD, client_for, logged_in

SMALL = 3
LARGE = 30
ADMIN = "portal_admin"
MEMBER = "project_admin"  # a DevOps administrator of alpha, not a portal admin

# (what, URL, who): API lists ask for a page that holds every row of the large fixture.
API_LISTS = [
    ("projects", "/api/v1/projects?page_size=100", (ADMIN, MEMBER)),
    ("library repositories", "/api/v1/repositories?page_size=100", (ADMIN, MEMBER)),
    ("project repositories", "/api/v1/projects/alpha/repositories?page_size=100", (ADMIN, MEMBER)),
    ("tags", "/api/v1/projects/alpha/repositories/app/tags?page_size=100", (ADMIN, MEMBER)),
    ("repository signatures", "/api/v1/projects/alpha/repositories/app/signatures", (ADMIN, MEMBER)),
    ("members", "/api/v1/projects/alpha/members?page_size=100", (ADMIN, MEMBER)),
    ("users", "/api/v1/users?page_size=100", (ADMIN, MEMBER)),
    ("groups", "/api/v1/groups?page_size=100", (ADMIN, MEMBER)),
    ("audit log", "/api/v1/audit-logs?page_size=100", (ADMIN,)),
    ("project audit log", "/api/v1/audit-logs?project=alpha&page_size=100", (ADMIN, MEMBER)),
    ("jobs", "/api/v1/jobs?page_size=100", (ADMIN, MEMBER)),
    ("GC jobs", "/api/v1/system/gc?page_size=100", (ADMIN,)),
    ("hosts", "/api/v1/projects/alpha/hosts?page_size=100", (ADMIN, MEMBER)),
    ("containers", "/api/v1/projects/alpha/containers?page_size=100", (ADMIN, MEMBER)),
    ("registries", "/api/v1/registries?page_size=100", (ADMIN,)),
    ("project registries", "/api/v1/projects/alpha/registries?page_size=100", (ADMIN, MEMBER)),
    ("credentials", "/api/v1/credentials?page_size=100", (ADMIN, MEMBER)),
    ("certificates", "/api/v1/certificates?page_size=100", (ADMIN,)),
    ("replication endpoints", "/api/v1/replication/endpoints?page_size=100", (ADMIN,)),
    ("replication rules", "/api/v1/replication/rules?page_size=100", (ADMIN, MEMBER)),
    ("replication executions", "/api/v1/replication/executions?page_size=100", (ADMIN, MEMBER)),
    ("replication tasks", "/api/v1/replication/executions/{execution}/tasks?page_size=100", (ADMIN, MEMBER)),
    ("scan report", "/api/v1/projects/alpha/repositories/app/tags/base/scan?page_size=100", (ADMIN, MEMBER)),
    ("system CVE allowlist", "/api/v1/system/cve-allowlist?page_size=100", (ADMIN,)),
    ("project CVE allowlist", "/api/v1/projects/alpha/cve-allowlist?page_size=100", (ADMIN, MEMBER)),
    ("vulnerability feeds", "/api/v1/vulndb?page_size=100", (ADMIN,)),
]
PAGES = [
    ("home dashboard", "/", (ADMIN, MEMBER)),
    ("projects", "/projects/", (ADMIN, MEMBER)),
    ("library repositories", "/library/repositories/", (ADMIN, MEMBER)),
    ("project repositories", "/projects/alpha/repositories/", (ADMIN, MEMBER)),
    ("tags", "/projects/alpha/repositories/app/", (ADMIN, MEMBER)),
    ("project summary and its vulnerability chart", "/projects/alpha/", (ADMIN, MEMBER)),
    ("members", "/projects/alpha/members/", (ADMIN, MEMBER)),
    ("users and groups", "/identities/", (ADMIN,)),
    ("logs", "/logs/", (ADMIN,)),
    ("project logs", "/projects/alpha/logs/", (ADMIN, MEMBER)),
    ("configuration and its jobs", "/configuration/", (ADMIN,)),
    ("hosts", "/hosts/?project=alpha", (ADMIN, MEMBER)),
    ("project infrastructure", "/projects/alpha/infrastructure/", (ADMIN, MEMBER)),
    ("host and its charts", "/hosts/{host}/", (ADMIN, MEMBER)),
    ("containers", "/containers/?project=alpha", (ADMIN, MEMBER)),
    ("registries", "/registries/", (ADMIN,)),
    ("project registries", "/projects/alpha/registries/", (ADMIN, MEMBER)),
    ("credentials", "/identities/credentials/", (ADMIN,)),
    ("certificates", "/identities/certificates/", (ADMIN,)),
]


def cases(lists: list[tuple[str, str, tuple[str, ...]]]) -> list:
    """One pytest case per list and user."""
    return [pytest.param(url, who, id=f"{what}-{who}") for what, url, people in lists for who in people]


class Rows:
    """Adds rows to every list of project alpha and of the site, each row holding what its list shows."""

    def __init__(self, member: User) -> None:
        self.alpha = Project.objects.get(name="alpha")
        self.member = member
        self.app = Repository.objects.create(project=self.alpha, name="alpha/app")
        self.pem = pki_paths().server_cert.read_text()
        self.certificate = certificate_info(self.pem)
        self.secret = encrypt("not-a-password")
        self.serial = count()
        self.endpoint = Endpoint.objects.create(name="dr-site", url="https://dr.example.com")
        self.execution = self.add_execution(Rule.objects.create(name="all", project=self.alpha, endpoint=self.endpoint))
        self.host = ContainerHost.objects.create(project=self.alpha, name="sampled", url="https://127.0.0.1:2376")
        base = Tag.objects.create(repository=self.app, name="base", digest="sha256:" + "f" * 64)
        self.scan = ImageScan.objects.create(
            digest=base.digest, repository=self.app.name, state=ScanState.SUCCEEDED, matched=timezone.now()
        )

    def add(self, rows: int) -> None:
        """`rows` more rows in every list."""
        for _ in range(rows):
            self.add_one(next(self.serial))

    def add_one(self, n: int) -> None:
        """A user, a group, a project and the rows of every list that belong to them."""
        user = User.objects.create_user(f"user{n}", password=PASSWORD, first_name="Some", last_name=f"One{n}")
        group = Group.objects.create(name=f"group{n}")
        group.members.add(user, self.member)
        project = Project.objects.create(name=f"project{n}", public=n % 2 == 0)
        Membership.objects.create(project=project, user=self.member, role=Role.DEVELOPER)
        Membership.objects.create(project=project, group=group, role=Role.VIEWER)
        Membership.objects.create(project=self.alpha, user=user, role=Role.VIEWER)
        Membership.objects.create(project=self.alpha, group=group, role=Role.DEVELOPER)
        self.add_repositories(n, project)
        self.add_connections(n)
        self.add_jobs(n)
        self.add_replication(n)
        self.add_scans(n)
        AuditEvent.objects.create(
            username=user.username, action="push", resource_type="repository", resource_name=f"alpha/r{n}",
            project=self.alpha, project_name="alpha",
        )  # fmt: skip

    def add_repositories(self, n: int, project: Project) -> None:
        """A repository with two tags in alpha, one in the new project, and a tag of alpha/app."""
        for owner in (self.alpha, project):
            repository = Repository.objects.create(project=owner, name=f"{owner.name}/r{n}")
            for name in ("1.0", "latest"):
                Tag.objects.create(repository=repository, name=name, digest=f"sha256:{n:064x}", size=1000)
        Tag.objects.create(repository=self.app, name=f"1.{n}", digest=f"sha256:{n:064x}", pushed_by="someone")
        # Every other image scanned, with findings for the tags table's Vulnerability column.
        if n % 2 == 0:
            ImageScan.objects.update_or_create(
                digest=f"sha256:{n:064x}",
                defaults={"repository": "alpha/app", "state": ScanState.SUCCEEDED, "matched": timezone.now(),
                          "summary": {"High": 1 + n, "Low": 2}, "fixable": 1, "package_count": 10,
                          "scanned": timezone.now()},
            )  # fmt: skip

    def add_connections(self, n: int) -> None:
        """Credentials, registries, a host with two containers in alpha, and a pinned certificate."""
        mine = Credential.objects.create(
            name=f"alpha-cred{n}", project=self.alpha, kind=CredentialKind.PASSWORD, encrypted_secret=self.secret
        )
        shared = Credential.objects.create(name=f"cred{n}", kind=CredentialKind.PASSWORD, encrypted_secret=self.secret)
        ExternalRegistry.objects.create(name=f"reg{n}", address=f"https://reg{n}.example.com", credential=shared)
        ExternalRegistry.objects.create(
            name=f"own{n}", address=f"https://own{n}.example.com", project=self.alpha, credential=mine
        )
        # Every other host is not ON (Home lists those); the sampled host gets one more CPU and memory sample.
        state = HostState.UNREACHABLE if n % 2 else HostState.ON
        host = ContainerHost.objects.create(
            project=self.alpha, name=f"host{n}", url=f"https://10.0.0.{n}:2376", credential=mine, state=state
        )
        HostSample.objects.create(
            host=self.host, time=timezone.now() - timedelta(seconds=n), cpu_percent=n, memory_used_bytes=n
        )
        DailyPulls.objects.create(project=self.alpha, day=timezone.now().date() - timedelta(days=n), count=n)
        for index in range(2):
            Container.objects.create(
                host=host, container_id=f"{n:032x}{index:032x}", name=f"web{n}-{index}", image="nginx",
                state=ContainerState.RUNNING, ports=[{"ip": "0.0.0.0", "private": 80, "public": 80, "protocol": "tcp"}],
            )  # fmt: skip
        info = self.certificate
        TrustedCertificate.objects.create(
            address=f"reg{n}.example.com:443", pem=self.pem, subject=info.subject, issuer=info.issuer,
            not_before=info.not_before, not_after=info.not_after, sha1=info.sha1, sha256=info.sha256,
        )  # fmt: skip

    def add_jobs(self, n: int) -> None:
        """A GC job and a job the member started, each with a log."""
        started = timezone.now() - timedelta(minutes=n)
        for kind, by in ((GARBAGE_COLLECTION, "root-admin"), ("hosts.provision", self.member.username)):
            # The member's jobs fail every other time (Home lists those); each GC run says what it freed.
            state = "failed" if kind != GARBAGE_COLLECTION and n % 2 else "succeeded"
            job = Job.objects.create(
                kind=kind, target=f"t{n}", state=state, created_by=by, started=started, finished=started
            )
            JobLogLine.objects.create(
                job=job, text=f"freed {n} bytes: 1 blobs deleted" if by == "root-admin" else "done"
            )

    def add_replication(self, n: int) -> None:
        """An endpoint with a login used by a rule of alpha that ran twice, and a task of the fixed execution."""
        credential = Credential.objects.create(
            name=f"replication-dr{n}", kind=CredentialKind.PASSWORD, username="robot", encrypted_secret=self.secret
        )
        endpoint = Endpoint.objects.create(name=f"dr{n}", url=f"https://dr{n}.example.com", credential=credential)
        rule = Rule.objects.create(name=f"rule{n}", project=self.alpha, endpoint=endpoint)
        for _ in range(2):
            self.add_execution(rule)
        job = Job.objects.create(kind=TASK, target=f"alpha/r{n}", parent=self.execution.job, state="failed")
        Task.objects.create(execution=self.execution, job=job, repository=f"alpha/r{n}", destination=f"alpha/r{n}")

    def add_scans(self, n: int) -> None:
        """A scan of the image the tags of `n` name, a finding of the base image, allowlist entries, a feed."""
        ImageScan.objects.get_or_create(
            digest=f"sha256:{n:064x}",
            defaults={"repository": f"alpha/r{n}", "state": ScanState.SUCCEEDED, "summary": {"High": 1}},
        )
        cve = f"CVE-0000-{n:04d}"
        self.scan.findings.create(
            vulnerability=cve, package=f"lib{n}", installed_version="1.0", severity=Severity.HIGH, rank=4
        )
        AllowlistEntry.objects.create(cve=cve)
        AllowlistEntry.objects.create(project=self.alpha, cve=cve)
        FeedSource.objects.create(name=f"feed{n}", source="debian", loaded={"vulnerabilities": n})

    def add_execution(self, rule: Rule) -> Execution:
        """A finished execution of the rule with one task."""
        job = Job.objects.create(kind=EXECUTION, target=rule.name, state="succeeded", created_by="root-admin")
        execution = Execution.objects.create(rule=rule, job=job, cause="manual")
        child = Job.objects.create(kind=TASK, target="alpha/app", parent=job, state="succeeded")
        Task.objects.create(execution=execution, job=child, repository="alpha/app", destination="alpha/app")
        return execution


@pytest.fixture
def rows(role_users: dict[str, User | None]) -> Rows:
    """The row maker, for the member (alpha's DevOps administrator)."""
    member = role_users[MEMBER]
    assert member is not None
    return Rows(member)


def queries_for(get: Callable[[], int]) -> list[str]:
    """The SQL of the queries one request runs (the status must be 200)."""
    # Sessions read the token lifetime, which a process keeps 5 s: fresh, it is not read during the request
    # (adding the large fixture may take longer than that).
    SystemSettings.forget_token_lifetime()
    SystemSettings.token_lifetime_seconds()
    with CaptureQueriesContext(connection) as captured:
        assert get() == 200
    return [query["sql"] for query in captured.captured_queries]


def most_repeated(queries: list[str]) -> str:
    """The statement run most often, with its count: where a list queries per row."""
    shapes = Counter(re.sub(r"\b\d+\b|'[^']*'", "?", sql) for sql in queries)
    shape, times = shapes.most_common(1)[0]
    return f"{times} x {shape[:300]}"


def assert_constant(rows: Rows, get: Callable[[], int]) -> None:
    """The same number of queries with SMALL and with LARGE rows in every list."""
    rows.add(SMALL)
    get()  # anything a first request does once per process is not what this counts
    small = queries_for(get)
    rows.add(LARGE - SMALL)
    large = queries_for(get)
    assert len(small) == len(large), (
        f"{len(small)} queries with {SMALL} rows, {len(large)} with {LARGE}; most repeated: {most_repeated(large)}"
    )


@pytest.mark.parametrize(("url", "who"), cases(API_LISTS))
def test_api_list_query_count_does_not_grow_with_rows(url: str, who: str, role_users: dict, rows: Rows) -> None:
    client = client_for(role_users[who])
    url = url.format(execution=rows.execution.pk)
    assert_constant(rows, lambda: client.get(url).status_code)


@pytest.mark.parametrize(("url", "who"), cases(PAGES))
def test_list_page_query_count_does_not_grow_with_rows(url: str, who: str, role_users: dict, rows: Rows) -> None:
    browser = logged_in(Client(), role_users[who])
    url = url.format(host=rows.host.pk)
    assert_constant(rows, lambda: browser.get(url, secure=True).status_code)
