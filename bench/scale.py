"""Every list API and page at a real site's size on PostgreSQL and SQLite (budget: p95 <= 100 ms, big <= 1.5x small).

Seeds the data set of issue 12 through the models (bulk_create, one transaction): 500 projects, 2,000 users each
in 5 projects, 50 groups holding roles, 10,000 repositories (2,000 in project `big`), 100,000 tags (2,000 on
`big/app`), 300,000 audit events, 50 hosts with 2,000 containers, 1,000 jobs with their logs, external registries,
credentials and pinned certificates. Then serves the portal (gunicorn over HTTPS, 2 workers x 4 threads, as
`make run`) and asks every list 30 times over one keep-alive connection, after two warm-up requests: the API with
an API token, the pages with a logged-in session, as `scale-member` (a DevOps administrator of `small` and `big`,
not a portal admin) and as `scale-admin` (a portal admin). Each row prints p50, p95, bytes and the SQL queries of
one request (counted in this process by Django's test client on the same database, the same user and URL), for
project `small` and project `big` side by side, and the budget: p95 <= 100 ms, big/small p50 <= 1.5x, the same
query count. Then tokens/s with 8 clients, and the cost of a password (HTTP Basic) request over an API-token one.

    .venv/bin/python bench/scale.py [--db postgres|sqlite|both] [--reuse] [--requests 30] [--only TEXT]

--reuse keeps a database seeded by an earlier run (seeding takes minutes, measuring a few). The PostgreSQL database
is `wharf_scale` on the test server (WHARF_SCALE_POSTGRES_URL to name another); the SQLite file and the portal's
data directory live under --workdir (a fixed folder under the temporary directory, so --reuse finds them).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path: put the repository root there instead, so `bench.*`
# and the portal's apps import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import requests

from bench.common import percentile, prepare_postgres, serving_portal

POSTGRES_URL = os.environ.get("WHARF_SCALE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/wharf_scale")
PASSWORD = "Scale-Passw0rd"

# The data set (issue 12).
PROJECTS = 500
USERS = 2000
PROJECTS_PER_USER = 5
GROUPS = 50
GROUP_SIZE = 40
GROUP_ROLES = 4
REPOSITORIES = 10_000
BIG_REPOSITORIES = 2000
TAGS = 100_000
BIG_TAGS = 2000
AUDIT_EVENTS = 300_000
HOSTS = 50
BIG_HOSTS = 25
CONTAINERS = 2000
JOBS = 1000
JOB_LOG_LINES = 10
REGISTRIES = 30
CREDENTIALS = 30
CERTIFICATES = 20
CHUNK = 10_000
# `small` holds one full API page (100 rows) of every list a project has: members, repositories, tags on small/app
# and containers, so both columns answer with as many rows and the ratio shows what the data behind the page costs,
# not how many rows came back.
SMALL_ROWS = 100

# The budget.
P95_BUDGET_MS = 100.0
BIG_OVER_SMALL = 1.5

# What the rows ask for: API lists at the largest page Harbor's API serves (the issue caps page size at 100).
API_PAGE_SIZE = 100
AUDIT_USER = "user0042"
AUDIT_OPERATION = "delete"
AUDIT_TEXT = "r01234"
# The last page of the whole audit log (OFFSET ~300,000), on the API and on the Logs page (20 rows a page).
AUDIT_DEEP_API_PAGE = AUDIT_EVENTS // API_PAGE_SIZE
AUDIT_DEEP_UI_PAGE = AUDIT_EVENTS // 20


@dataclass(frozen=True)
class Endpoint:
    """One list to measure: `path` may name {project} (then it is measured on `small` and on `big`) and {cursor}."""

    name: str
    path: str
    kind: str  # "api": an API token; "page": a browser session
    who: tuple[str, ...] = ("member",)

    @property
    def scoped(self) -> bool:
        """True when the row is measured on a small and on the big project."""
        return "{project}" in self.path


def api(path: str) -> str:
    """An API list URL asking for API_PAGE_SIZE rows."""
    return f"/api/v1/{path}{'&' if '?' in path else '?'}page_size={API_PAGE_SIZE}"


BOTH = ("member", "admin")
ADMIN = ("admin",)
# Every list API and page of the issue. Filters other work adds (the audit log's exact ones, keyset paging) may not
# exist on the code measured: a 4xx is printed as such; an unknown query parameter is ignored by django-filter and
# then the row measures the unfiltered list.
ENDPOINTS = [
    Endpoint("API projects", api("projects"), "api", BOTH),
    Endpoint("API repositories (library)", api("repositories"), "api", BOTH),
    Endpoint("API project repositories", api("projects/{project}/repositories"), "api"),
    Endpoint("API tags of {project}/app", api("projects/{project}/repositories/app/tags"), "api"),
    Endpoint("API members", api("projects/{project}/members"), "api"),
    Endpoint("API users", api("users"), "api", BOTH),
    Endpoint("API groups", api("groups"), "api", ADMIN),
    Endpoint("API audit: project's events", api("audit-logs?project={project}"), "api"),
    Endpoint("API audit: all", api("audit-logs"), "api", ADMIN),
    Endpoint("API audit: one user ?q=", api(f"audit-logs?q={AUDIT_USER}"), "api", ADMIN),
    Endpoint("API audit: one user ?user=", api(f"audit-logs?user={AUDIT_USER}"), "api", ADMIN),
    Endpoint("API audit: one operation ?q=", api(f"audit-logs?q={AUDIT_OPERATION}"), "api", ADMIN),
    Endpoint("API audit: operation ?operation=", api(f"audit-logs?operation={AUDIT_OPERATION}"), "api", ADMIN),
    Endpoint("API audit: free text", api(f"audit-logs?q={AUDIT_TEXT}"), "api", ADMIN),
    Endpoint("API audit: deep page ?page=", api(f"audit-logs?page={AUDIT_DEEP_API_PAGE}"), "api", ADMIN),
    Endpoint("API audit: deep page ?cursor=", api("audit-logs?cursor={cursor}"), "api", ADMIN),
    Endpoint("API hosts", api("projects/{project}/hosts"), "api"),
    Endpoint("API containers", api("projects/{project}/containers"), "api"),
    Endpoint("API containers page_size=500", "/api/v1/projects/{project}/containers?page_size=500", "api", ADMIN),
    Endpoint("API jobs", api("jobs"), "api", BOTH),
    Endpoint("API GC jobs", api("system/gc"), "api", ADMIN),
    Endpoint("API registries", api("registries"), "api", ADMIN),
    Endpoint("API project registries", api("projects/{project}/registries"), "api"),
    Endpoint("API credentials", api("credentials"), "api", ADMIN),
    Endpoint("API certificates", api("certificates"), "api", ADMIN),
    Endpoint("home page", "/", "page", BOTH),
    Endpoint("projects page (header selector)", "/projects/", "page", BOTH),
    Endpoint("library repositories page", "/library/repositories/", "page", BOTH),
    Endpoint("project repositories tab", "/projects/{project}/repositories/", "page"),
    Endpoint("tags page of {project}/app", "/projects/{project}/repositories/app/", "page"),
    Endpoint("members tab", "/projects/{project}/members/", "page"),
    Endpoint("project logs tab", "/projects/{project}/logs/", "page"),
    Endpoint("users & groups page", "/identities/", "page", ADMIN),
    Endpoint("logs page", "/logs/", "page", ADMIN),
    Endpoint("logs page: one user", f"/logs/?q={AUDIT_USER}", "page", ADMIN),
    Endpoint("logs page: deep page ?page=", f"/logs/?page={AUDIT_DEEP_UI_PAGE}", "page", ADMIN),
    Endpoint("logs page: deep page ?cursor=", "/logs/?cursor={cursor}", "page", ADMIN),
    Endpoint("containers page", "/containers/?project={project}", "page"),
    Endpoint("hosts page", "/hosts/?project={project}", "page"),
    Endpoint("configuration page (jobs)", "/configuration/", "page", ADMIN),
    Endpoint("registries page", "/registries/", "page", ADMIN),
    Endpoint("credentials page", "/identities/credentials/", "page", ADMIN),
    Endpoint("certificates page", "/identities/certificates/", "page", ADMIN),
]


# Setting up: the database, Django in this process, the data set.


def database_url(db: str, workdir: Path) -> str:
    """The database the run seeds and measures."""
    return POSTGRES_URL if db == "postgres" else f"sqlite:///{workdir / 'scale.sqlite3'}"


def prepare_database(db: str, workdir: Path, fresh: bool) -> None:
    """Make sure the run's database exists; `fresh` drops it first, so seeding starts from nothing."""
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal") if fresh else ():
            (workdir / f"scale.sqlite3{suffix}").unlink(missing_ok=True)
        return
    prepare_postgres(POSTGRES_URL, fresh)


def setup_django(db: str, workdir: Path, reuse: bool) -> bool:
    """Point Django in this process at the run's database and migrate it; True when it still needs seeding."""
    data_dir = workdir / "data"
    prepare_database(db, workdir, fresh=not reuse)
    os.environ.update(
        WHARF_DATA_DIR=str(data_dir),
        WHARF_DATABASE_URL=database_url(db, workdir),
        DJANGO_SETTINGS_MODULE="portal.settings",
        WHARF_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from portal.core.certificates import ensure_pki
    from projects.models import Project

    ensure_pki()
    call_command("migrate", verbosity=0)
    return not Project.objects.filter(name="big").exists()


def chunks(rows: Iterator[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """The rows in lists of `size`, so a 300,000-row table never sits in memory whole."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk(model: type, rows: Iterator[Any]) -> int:
    """bulk_create the rows chunk by chunk; the number written."""
    written = 0
    for batch in chunks(rows):
        model.objects.bulk_create(batch, batch_size=2000)
        written += len(batch)
    return written


def digest(*parts: object) -> str:
    """A made-up sha256 digest, stable for the same parts."""
    return "sha256:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def seed() -> None:
    """Write the data set through the models, in one transaction (SQLite: without syncing to disk)."""
    from django.db import connection, transaction

    started = time.monotonic()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            # Only while seeding: a crash would leave a half-written throwaway database, which --reuse-less reruns drop.
            cursor.execute("PRAGMA synchronous=OFF")
    steps: list[tuple[str, Callable[[], int]]] = [
        ("projects", seed_projects),
        ("users", seed_users),
        ("memberships", seed_memberships),
        ("groups", seed_groups),
        ("repositories", seed_repositories),
        ("tags", seed_tags),
        ("audit events", seed_audit),
        ("hosts and containers", seed_hosts),
        ("jobs", seed_jobs),
        ("registries, credentials, certificates", seed_connections),
    ]
    with transaction.atomic():
        for name, step in steps:
            took = time.monotonic()
            count = step()
            print(f"  seeded {count:>7} {name} in {time.monotonic() - took:5.1f} s", flush=True)
    if connection.vendor == "postgresql":
        # What autovacuum does on a real site after such writes: planner statistics and the visibility map.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    print(f"  seeding took {time.monotonic() - started:.0f} s", flush=True)


def ids(model: type, field: str = "name") -> dict[str, int]:
    """Name -> id of every row of a model."""
    return dict(model.objects.values_list(field, "id"))


def other_project_names() -> list[str]:
    """The projects besides `big`: `small` first, then p000 to p497."""
    return ["small"] + [f"p{index:03d}" for index in range(PROJECTS - 2)]


def seed_projects() -> int:
    """`big`, `small` and 498 more, every tenth public."""
    from projects.models import Project

    names = ["big", *other_project_names()]
    return bulk(
        Project, (Project(name=name, public=index % 10 == 9, created_by="seed") for index, name in enumerate(names))
    )


def seed_users() -> int:
    """2,000 users sharing one password hash (hashing each would take minutes), and the bench's two."""
    from django.contrib.auth.hashers import make_password

    from portal.core.models import User

    password = make_password(PASSWORD)
    users = (
        User(
            username=f"user{index:04d}",
            password=password,
            email=f"user{index:04d}@example.com",
            first_name=f"First{index}",
            last_name=f"Last{index}",
        )
        for index in range(USERS)
    )
    written = bulk(User, users)
    User.objects.create(username="scale-admin", password=password, is_portal_admin=True)
    User.objects.create(username="scale-member", password=password)
    return written + 2


def seed_memberships() -> int:
    """Every user in `big` and 4 other projects (about 16 members each; `small` has 100); scale-member admins both."""
    from portal.core.models import User
    from projects.models import Membership, Project, Role

    projects = ids(Project)
    users = ids(User, "username")
    others = other_project_names()
    roles = [Role.VIEWER, Role.DEVELOPER, Role.VIEWER, Role.ADMIN]

    def rows() -> Iterator[Membership]:
        for index in range(USERS):
            user = users[f"user{index:04d}"]
            yield Membership(project_id=projects["big"], user_id=user, role=roles[index % 4])
            for step in range(PROJECTS_PER_USER - 1):
                name = others[(index * (PROJECTS_PER_USER - 1) + step) % len(others)]
                yield Membership(project_id=projects[name], user_id=user, role=roles[(index + step) % 4])
        already = {users[f"user{index:04d}"] for index in range(USERS) if small_member(index)}
        for index in range(USERS):
            user = users[f"user{index:04d}"]
            if len(already) < SMALL_ROWS - 1 and user not in already:
                already.add(user)
                yield Membership(project_id=projects["small"], user_id=user, role=roles[index % 4])
        member = users["scale-member"]
        yield Membership(project_id=projects["big"], user_id=member, role=Role.ADMIN)
        yield Membership(project_id=projects["small"], user_id=member, role=Role.ADMIN)
        for name in ("p100", "p200", "p300"):
            yield Membership(project_id=projects[name], user_id=member, role=Role.DEVELOPER)

    def small_member(index: int) -> bool:
        """Whether user `index` is in `small` through the spread above."""
        return any(
            others[(index * (PROJECTS_PER_USER - 1) + step) % len(others)] == "small"
            for step in range(PROJECTS_PER_USER - 1)
        )

    return bulk(Membership, rows())


def seed_groups() -> int:
    """50 groups of 40 users, each holding a role in 4 projects; scale-member belongs to group00."""
    from portal.core.models import Group, User
    from projects.models import Membership, Project, Role

    Group.objects.bulk_create(Group(name=f"group{index:02d}") for index in range(GROUPS))
    groups = ids(Group)
    users = ids(User, "username")
    projects = ids(Project)
    others = other_project_names()[1:]
    through = Group.members.through
    members = [
        through(group_id=groups[f"group{index:02d}"], user_id=users[f"user{(index * GROUP_SIZE + k) % USERS:04d}"])
        for index in range(GROUPS)
        for k in range(GROUP_SIZE)
    ]
    members.append(through(group_id=groups["group00"], user_id=users["scale-member"]))
    through.objects.bulk_create(members)
    roles = [
        Membership(
            project_id=projects[others[(index * 7 + k * 101) % len(others)]],
            group_id=groups[f"group{index:02d}"],
            role=Role.VIEWER if k % 2 else Role.DEVELOPER,
        )
        for index in range(GROUPS)
        for k in range(GROUP_ROLES)
    ]
    Membership.objects.bulk_create(roles)
    return len(members) + len(roles)


def seed_repositories() -> int:
    """2,000 repositories in `big`, 100 in `small`, the other 7,900 spread over the other projects (about 16 each)."""
    from projects.models import Project
    from registries.models import Repository

    projects = ids(Project)
    others = other_project_names()

    def rows() -> Iterator[Repository]:
        yield Repository(project_id=projects["big"], name="big/app", pull_count=7)
        for index in range(1, BIG_REPOSITORIES):
            yield Repository(project_id=projects["big"], name=f"big/r{index:05d}", pull_count=index)
        yield Repository(project_id=projects["small"], name="small/app", pull_count=3)
        for index in range(1, SMALL_ROWS):
            yield Repository(project_id=projects["small"], name=f"small/s{index:05d}", pull_count=index)
        spread = others[1:]
        for index in range(REPOSITORIES - BIG_REPOSITORIES - SMALL_ROWS):
            project = spread[index % len(spread)]
            name = f"{project}/app" if index < len(spread) else f"{project}/r{index:05d}"
            yield Repository(project_id=projects[project], name=name, pull_count=index % 50)

    return bulk(Repository, rows())


def seed_tags() -> int:
    """2,000 tags on big/app, 100 on small/app, the other 97,900 spread over the other repositories (9 or 10 each)."""
    from registries.models import Repository, Tag

    repositories = ids(Repository)
    others = sorted(name for name in repositories if name not in ("big/app", "small/app"))
    rest = TAGS - BIG_TAGS - SMALL_ROWS
    base, extra = divmod(rest, len(others))

    def rows() -> Iterator[Tag]:
        for index in range(BIG_TAGS):
            yield tag(repositories["big/app"], index)
        for index in range(SMALL_ROWS):
            yield tag(repositories["small/app"], index)
        for position, name in enumerate(others):
            for index in range(base + (1 if position < extra else 0)):
                yield tag(repositories[name], index)

    return bulk(Tag, rows())


def tag(repository_id: int, index: int) -> Any:
    """Tag `index` of a repository, pushed `index` hours before the newest."""
    from django.utils import timezone

    from registries.models import Tag

    return Tag(
        repository_id=repository_id,
        name=f"1.{index}",
        digest=digest(repository_id, index),
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=50_000_000 + index * 1000,
        pushed_by=f"user{index % USERS:04d}",
        pushed_at=timezone.now() - timedelta(hours=index),
    )


def seed_audit() -> int:
    """300,000 events over 180 days: a third in `big`, the rest spread over users, operations and projects."""
    from django.utils import timezone

    from portal.core.models import AuditEvent, Outcome
    from projects.models import Project

    projects = ids(Project)
    names = ["big", *other_project_names()]
    actions = ["push", "pull", "create", "delete", "update", "login"]
    types = ["repository", "tag", "project", "member", "user", "host"]
    now = timezone.now()
    step = timedelta(days=180) / AUDIT_EVENTS

    def rows() -> Iterator[AuditEvent]:
        for index in range(AUDIT_EVENTS):
            project = "big" if index % 3 == 0 else names[1 + index % (len(names) - 1)]
            yield AuditEvent(
                time=now - step * index,
                username=f"user{index % (USERS + 1):04d}",
                action=actions[index % len(actions)],
                resource_type=types[(index // 7) % len(types)],
                resource_name=f"{project}/r{index % 10_000:05d}:1.{index % 13}",
                project_id=projects[project],
                project_name=project,
                outcome=Outcome.FAILURE if index % 20 == 0 else Outcome.SUCCESS,
                client_address=f"10.{index % 7}.{index % 251}.{index % 199 + 1}",
            )

    return bulk(AuditEvent, rows())


def seed_hosts() -> int:
    """25 hosts with 1,852 containers in `big`; one with 100 in `small`; one with 2 in each of 24 other projects."""
    from django.utils import timezone

    from hosts.models import Container, ContainerHost, ContainerState
    from projects.models import Project

    projects = ids(Project)
    owners = ["big"] * BIG_HOSTS + ["small"] + [f"p{index:03d}" for index in range(HOSTS - BIG_HOSTS - 1)]
    now = timezone.now()
    ContainerHost.objects.bulk_create(
        ContainerHost(
            project_id=projects[owner],
            name=f"host{index:02d}",
            url=f"https://10.1.{index}.1:2376",
            last_seen=now,
            last_collected=now,
            api_version="1.43",
            engine_version="24.0.7",
            operating_system="Debian GNU/Linux 12",
            cpus=8,
            memory_bytes=32 << 30,
            images=40,
            created_by="seed",
        )
        for index, owner in enumerate(owners)
    )
    hosts = list(ContainerHost.objects.order_by("name").values_list("id", "project__name"))
    big_hosts = [pk for pk, owner in hosts if owner == "big"]
    small_host = [pk for pk, owner in hosts if owner == "small"]
    other_hosts = [pk for pk, owner in hosts if owner not in ("big", "small")]
    per_other = 2
    per_big = (CONTAINERS - SMALL_ROWS - per_other * len(other_hosts)) // len(big_hosts)
    placement = [(pk, per_big) for pk in big_hosts] + [(pk, SMALL_ROWS) for pk in small_host]
    placement += [(pk, per_other) for pk in other_hosts]

    def rows() -> Iterator[Container]:
        for host, count in placement:
            for index in range(count):
                running = index % 3 != 0
                yield Container(
                    host_id=host,
                    container_id=hashlib.sha256(f"{host}/{index}".encode()).hexdigest(),
                    name=f"web-{host}-{index:04d}",
                    image=f"registry.example.com/big/r{index:05d}:1.{index % 9}",
                    command="nginx -g 'daemon off;'",
                    state=ContainerState.RUNNING if running else ContainerState.EXITED,
                    status="Up 3 days" if running else "Exited (0) 2 days ago",
                    ports=[{"ip": "0.0.0.0", "private": 80, "public": 8000 + index, "protocol": "tcp"}],
                    last_seen=now,
                )

    return len(hosts) + bulk(Container, rows())


def seed_jobs() -> int:
    """1,000 finished jobs with 10 log lines each; a tenth started by scale-member."""
    from django.utils import timezone

    from portal.core.models import Job, JobLogLine, JobState

    kinds = ["registry_gc", "hosts.collect_host", "directory_sync", "hosts.provision"]
    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            kind=kinds[index % len(kinds)],
            target=f"target{index}",
            state=JobState.SUCCEEDED if index % 9 else JobState.FAILED,
            progress=100,
            created=now - timedelta(minutes=index),
            started=now - timedelta(minutes=index),
            finished=now - timedelta(minutes=index) + timedelta(seconds=30),
            created_by="scale-member" if index % 10 == 0 else "scale-admin",
        )
        for index in range(JOBS)
    )
    lines = (
        JobLogLine(job_id=job, attempt=1, text=f"step {line} of job {job}: " + "x" * 80)
        for job in Job.objects.values_list("id", flat=True)
        for line in range(JOB_LOG_LINES)
    )
    return JOBS + bulk(JobLogLine, lines)


def seed_connections() -> int:
    """Global registries and credentials, 3 registries each for `small` and `big`, pinned certificates."""
    from portal.core.certificates import pki_paths
    from portal.core.credentials import certificate_info
    from portal.core.models import Credential, CredentialKind, TrustedCertificate
    from portal.core.secrets import encrypt
    from projects.models import Project
    from registries.models import ExternalRegistry

    secret = encrypt("not-a-real-password")
    Credential.objects.bulk_create(
        Credential(name=f"cred{index:02d}", kind=CredentialKind.PASSWORD, username="robot", encrypted_secret=secret)
        for index in range(CREDENTIALS)
    )
    registries = [
        ExternalRegistry(name=f"registry{index:02d}", address=f"https://registry{index:02d}.example.com")
        for index in range(REGISTRIES)
    ]
    for project in Project.objects.filter(name__in=["small", "big"]):
        registries += [
            ExternalRegistry(name=f"own{index}", address=f"https://{project.name}{index}.example.com", project=project)
            for index in range(3)
        ]
    ExternalRegistry.objects.bulk_create(registries)
    pem = pki_paths().server_cert.read_text()
    facts = asdict(certificate_info(pem))
    TrustedCertificate.objects.bulk_create(
        TrustedCertificate(
            address=f"registry{index:02d}.example.com:443",
            pem=pem,
            **facts,
        )
        for index in range(CERTIFICATES)
    )
    return CREDENTIALS + len(registries) + CERTIFICATES


# Measuring.


@dataclass
class Identity:
    """A bench user with an API token and a browser session."""

    username: str
    api_key: str
    session_key: str


def identities() -> dict[str, Identity]:
    """scale-member and scale-admin, each with a fresh API token and a logged-in session."""
    from django.test import Client

    from portal.core.audit import Actor
    from portal.core.models import ApiToken, User
    from portal.core.services import create_token

    found = {}
    for who in ("member", "admin"):
        user = User.objects.get(username=f"scale-{who}")
        ApiToken.objects.filter(user=user, name="scale-bench").delete()
        key = create_token(Actor(user), "scale-bench")[1]
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        found[who] = Identity(user.username, key, client.session.session_key)
    return found


@dataclass
class Measure:
    """One URL's figures: status, latencies (ms), body bytes and the SQL queries of one request."""

    status: int
    times: list[float] = field(default_factory=list)
    size: int = 0
    queries: int = 0

    @property
    def ok(self) -> bool:
        """True when the URL answered 200."""
        return self.status == 200

    @property
    def p50(self) -> float:
        """The median latency, ms."""
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        """The 95th percentile latency, ms."""
        return percentile(self.times, 0.95)


class Bench:
    """The clients of a run: keep-alive HTTPS sessions for the timings, Django's test client for the query counts."""

    def __init__(self, url: str, ca: str, people: dict[str, Identity], requests_per_url: int) -> None:
        from django.conf import settings
        from django.test import Client

        self.url = url
        self.count = requests_per_url
        self.deep_cursor = deep_cursor()
        self.http: dict[tuple[str, str], requests.Session] = {}
        self.local: dict[tuple[str, str], Client] = {}
        for who, person in people.items():
            for kind in ("api", "page"):
                http = requests.Session()
                # Not the environment's CA bundle or proxies (REQUESTS_CA_BUNDLE would override `verify`).
                http.trust_env = False
                http.verify = ca
                local = Client()
                if kind == "api":
                    http.headers["Authorization"] = f"Bearer {person.api_key}"
                    local.defaults["HTTP_AUTHORIZATION"] = f"Bearer {person.api_key}"
                else:
                    http.headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={person.session_key}"
                    local.cookies[settings.SESSION_COOKIE_NAME] = person.session_key
                self.http[(who, kind)] = http
                self.local[(who, kind)] = local

    def measure(self, who: str, kind: str, paths: list[str]) -> list[Measure]:
        """Two warm-up requests per URL, then `count` timed rounds asking each URL in turn; the queries of one more.

        The URLs (a small project's and the big one's) take turns, so the machine's drift during a run (other
        work on its two CPUs) weighs on both alike and their ratio stays fair.
        """
        http = self.http[(who, kind)]
        results = [Measure(http.get(self.url + path, timeout=300).status_code) for path in paths]
        answered = [(path, result) for path, result in zip(paths, results, strict=True) if result.ok]
        for path, _ in answered:
            http.get(self.url + path, timeout=300)
        for _ in range(self.count):
            for path, result in answered:
                started = time.perf_counter()
                response = http.get(self.url + path, timeout=300)
                result.times.append((time.perf_counter() - started) * 1000)
                result.size = len(response.content)
        for path, result in answered:
            result.queries = self.queries(who, kind, path)
        return results

    def queries(self, who: str, kind: str, path: str) -> int:
        """The SQL statements the portal runs for a warm request of the URL: the fewer of two, after one more.

        A process re-reads the token lifetime every 5 s and marks an API token used once a minute; the fewer of
        two requests leaves out that occasional statement, which is not the list's cost.
        """
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client = self.local[(who, kind)]
        client.get(path, secure=True)
        counts = []
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                client.get(path, secure=True)
            counts.append(len(captured))
        return min(counts)


def deep_cursor() -> str:
    """A keyset cursor of the audit log (`{"after": [time, id]}` in base64) at the deep page's first event.

    The audit log's cursors are what issue 12's keyset paging hands out; on code without it `?cursor=` is ignored.
    """
    from portal.core.models import AuditEvent

    time_, pk = AuditEvent.objects.order_by("-time", "-id").values_list("time", "id")[AUDIT_EVENTS - API_PAGE_SIZE]
    data = json.dumps({"after": [time_.isoformat(), pk]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def verdict(small: Measure | None, big: Measure) -> str:
    """PASS, or FAIL with the budgets broken; `-` when a URL did not answer 200."""
    measured = [m for m in (small, big) if m is not None]
    if not all(m.ok for m in measured):
        return "-"
    broken = [f"p95 {m.p95:.0f}>{P95_BUDGET_MS:.0f}" for m in measured if m.p95 > P95_BUDGET_MS]
    if small is not None:
        if big.p50 > BIG_OVER_SMALL * small.p50:
            broken.append(f"big {big.p50 / small.p50:.1f}x")
        if big.queries != small.queries:
            broken.append(f"SQL {small.queries}!={big.queries}")
    return "FAIL " + ", ".join(broken) if broken else "PASS"


def cells(measure: Measure | None) -> str:
    """p50, p95, KB and SQL of one measure, or why there is none."""
    if measure is None:
        return f"{'':29}"
    if not measure.ok:
        return f"{'HTTP ' + str(measure.status):>29}"
    return f"{measure.p50:7.1f} {measure.p95:7.1f} {measure.size / 1024:7.1f} {measure.queries:4d}"


def measure_lists(bench: Bench, only: str) -> tuple[int, int]:
    """Print every endpoint's row; the numbers of rows passing and measured."""
    print(f"\n{'':44} {'small project':^29} | {'big project (or site-wide)':^29} |")
    header = f"{'p50':>7} {'p95':>7} {'KB':>7} {'SQL':>4}"
    print(f"{'endpoint':36} {'as':7} {header} | {header} | {'big/small':9} budget")
    passed = measured = 0
    for endpoint in ENDPOINTS:
        if only and only.lower() not in endpoint.name.lower() + endpoint.path.lower():
            continue
        for who in endpoint.who:
            path = endpoint.path.replace("{cursor}", bench.deep_cursor)
            if endpoint.scoped:
                paths = [path.format(project="small"), path.format(project="big")]
                small, big = bench.measure(who, endpoint.kind, paths)
            else:
                small, big = None, bench.measure(who, endpoint.kind, [path])[0]
            ratio = f"{big.p50 / small.p50:8.2f}x" if small and small.ok and big.ok else f"{'':9}"
            outcome = verdict(small, big)
            name = endpoint.name.format(project="small|big" if endpoint.scoped else "")
            print(f"{name[:36]:36} {who:7} {cells(small)} | {cells(big)} | {ratio} {outcome}", flush=True)
            if outcome != "-":
                measured += 1
                passed += outcome == "PASS"
    return passed, measured


def measure_tokens(bench: Bench, people: dict[str, Identity], clients: int, seconds: float) -> None:
    """Tokens/s with `clients` concurrent clients (API token and password), and what a password request adds."""
    from bench.token_service import hammer

    url = f"{bench.url}/service/token"
    ca = bench.http[("member", "api")].verify
    params = {"service": "wharf-registry", "scope": "repository:big/app:push,pull"}
    member = people["member"].username
    cases = [
        ("API token, push+pull on big", (member, people["member"].api_key)),
        ("password, push+pull on big", (member, PASSWORD)),
    ]
    hammer(url, params, cases[0][1], ca, 2, 1)  # warm up
    print(f"\ntoken service, {clients} concurrent clients, {seconds:.0f} s each")
    for name, auth in cases:
        # Password checks are slow by design: a shorter run counts enough of them.
        rate, failures, p95 = hammer(
            url, params, auth, ca, clients, seconds if auth == cases[0][1] else min(seconds, 5)
        )
        print(f"  {name:32s} {rate:8.1f} tokens/s   p95 {p95:7.1f} ms   failures {failures}", flush=True)
    # One client, one after another: a password request's extra time over an API-token one is the password check.
    one: dict[str, float] = {}
    for name, auth in cases:
        http = requests.Session()
        http.trust_env = False
        http.verify = ca
        http.auth = auth
        http.get(url, params=params, timeout=60)
        times = []
        for _ in range(bench.count):
            started = time.perf_counter()
            http.get(url, params=params, timeout=60).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        one[name] = statistics.median(times)
    extra = one[cases[1][0]] - one[cases[0][0]]
    print(
        f"  one client: API token {one[cases[0][0]]:.1f} ms, password {one[cases[1][0]]:.1f} ms p50:"
        f" a password request after the first costs {extra:.1f} ms more (budget <= 10 ms of hashing):"
        f" {'PASS' if extra <= 10 else 'FAIL'}"
    )


def data_set() -> str:
    """The row counts of the seeded tables, as the run found them."""
    from hosts.models import Container, ContainerHost
    from portal.core.models import AuditEvent, Group, Job, User
    from projects.models import Membership, Project
    from registries.models import Repository, Tag

    counts = [(m._meta.verbose_name_plural, m.objects.count()) for m in (Project, User, Group, Membership)]
    counts += [(m._meta.verbose_name_plural, m.objects.count()) for m in (Repository, Tag, AuditEvent)]
    counts += [(m._meta.verbose_name_plural, m.objects.count()) for m in (ContainerHost, Container, Job)]
    return ", ".join(f"{count:,} {name}" for name, count in counts)


def database_version() -> str:
    """The database server and its version."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"PostgreSQL {connection.pg_version // 10000}.{connection.pg_version % 10000}"
    return f"SQLite {connection.Database.sqlite_version}"


def run(args: argparse.Namespace) -> None:
    """Seed (unless reused) and measure one database."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    needs_seed = setup_django(args.db, workdir, args.reuse)
    if needs_seed:
        print(f"seeding {args.db} ...", flush=True)
        seed()
    from django.db import connection

    print(f"\n{args.db} ({database_version()}): {data_set()}")
    people = identities()
    connection.close()
    settings = {"WHARF_DATABASE_URL": database_url(args.db, workdir), **dict(s.split("=", 1) for s in args.setting)}
    data_dir = workdir / "data"
    with serving_portal(data_dir, settings, workdir / f"gunicorn-{args.db}.log") as url:
        print(
            f"gunicorn 2 workers x 4 threads, HTTPS; {args.requests} warm requests a URL on one keep-alive connection"
        )
        print(f"settings: {' '.join(f'{k}={v}' for k, v in sorted(settings.items()))}")
        bench = Bench(url, str(data_dir / "pki" / "ca.crt"), people, args.requests)
        passed, measured = measure_lists(bench, args.only)
        budget = f"p95 <= {P95_BUDGET_MS:.0f} ms, big <= {BIG_OVER_SMALL}x small, same SQL"
        print(f"\n{passed} of {measured} rows within budget ({budget})")
        if not args.only:
            measure_tokens(bench, people, args.clients, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded by an earlier run")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    parser.add_argument("--only", default="", help="measure only the endpoints whose name or path holds this text")
    parser.add_argument("--clients", type=int, default=8, help="concurrent token service clients")
    parser.add_argument("--seconds", type=float, default=10, help="how long each token service case runs")
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE, a WHARF_* setting for the portal")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "wharf-scale"))
    args = parser.parse_args()
    if args.db != "both":
        run(args)
        return
    # Django serves one database per process: each database gets a process of its own.
    for db in ("postgres", "sqlite"):
        command = [sys.executable, __file__, *sys.argv[1:], "--db", db]
        if subprocess.run(command, check=False).returncode != 0:
            sys.exit(f"the {db} run failed")


if __name__ == "__main__":
    main()
