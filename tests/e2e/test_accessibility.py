"""Every page of the UI checked by axe-core in a real browser: no critical or serious accessibility violation.

The pages come from the URL conf: every named route of the UI apps, its arguments filled from one object of each
kind (a project with a member, a repository and tags pushed to a real registry and scanned, an external registry, a
host with a container, a replication endpoint, rule and execution, a scanner, a user, a group, a credential, a
pinned certificate). A route the test cannot open must be listed in UNREACHABLE with the reason, so a new page
whose arguments nobody taught the test fails here instead of going unchecked.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import URLPattern, URLResolver, reverse
from playwright.sync_api import Page, expect

from hosts.containers import PROVISION
from hosts.models import Container, ContainerHost, ContainerState
from portal.core.audit import Actor
from portal.core.certificates import certificate_builder, fingerprint
from portal.core.models import Credential, CredentialKind, Group, Job, JobLogLine, JobState, TrustedCertificate, User
from portal.core.services import create_token
from portal.urls import UI_APPS
from projects.models import Membership, Project, Role
from registries.models import ExternalRegistry, Tag
from registries.services import GARBAGE_COLLECTION
from replication.models import Endpoint, Execution, Rule, Task
from scanning import services as scanning
from scanning.models import AllowlistEntry, ImageScan, ScannerKind, ScannerRegistration, ScanState
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.integration.registry import Registry, point_portal_at, start_registry
from tests.scanning.conftest import write_feeds
from tests.scanning.scanned_images import build_vulnerable_image, pushed

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "best-practice"]
FAILING_IMPACTS = ("critical", "serious")
# A fragment (a table row, a job panel) is checked on its own too, without the rules about a whole document.
DOCUMENT_RULES = ("html-has-lang", "document-title", "landmark-one-main", "region", "page-has-heading-one")
WIDE, NARROW = 1440, 800

# Routes no GET can show, each with the reason. Every other named UI route must open as a page or fragment.
UNREACHABLE: dict[str, str] = {
    "login": "a logged-in user is sent Home; test_the_login_page_has_no_serious_violation checks it logged out",
    "logout": "logs the user out (POST only); checked as the header's Log out button on every page",
    "container-action": "POST only: start, stop, remove a container; its buttons are on container-detail",
    "container-bulk-action": "POST only: start, stop, restart, remove the selected containers; its buttons are on "
    "the containers table",
    "favicon": "an icon, not a page: /favicon.ico redirects to the static file (tests/portal/test_names_and_favicon)",
}
# Query strings the edit dialogs need: they edit the one object selected in the table.
QUERIES: dict[str, Callable[[Any], dict[str, str]]] = {
    "identity-edit": lambda w: {"selected": f"user:{w.user.username}"},
    "user-edit": lambda w: {"selected": f"user:{w.user.username}"},
    "user-password-reset": lambda w: {"selected": f"user:{w.user.username}"},
    "group-edit": lambda w: {"selected": f"group:{w.group.name}"},
    "identity-projects": lambda w: {"selected": f"user:{w.user.username}"},
    "identity-project-row": lambda w: {"selected": f"user:{w.user.username}", "project": w.project.name},
    "member-edit": lambda w: {"member": str(w.membership.pk)},
    "replication-endpoint-edit": lambda w: {"selected": w.spare_endpoint.name},
    "replication-endpoint-delete": lambda w: {"selected": w.spare_endpoint.name},
    "repository-delete": lambda w: {"repositories": w.tag.repository.name},
    "tag-delete": lambda w: {"tag": w.tag.name},
    "replication-rule-edit": lambda w: {"selected": w.rule.name},
    "replication-rule-delete": lambda w: {"selected": w.rule.name},
    "library-tags": lambda w: {},
}
# The main forms, opened as dialogs from the page that offers them: (route, its arguments, the link that opens it).
DIALOGS: list[tuple[str, Callable[[Any], list[str]], str]] = [
    ("project-list", lambda w: [], "+ Project"),
    ("project-members", lambda w: [w.project.name], "+ Add"),
    ("global-registries", lambda w: [], "+ Registry"),
    ("project-infrastructure", lambda w: [w.project.name], "+ Host"),
    ("container-list", lambda w: [], "+ Container"),
    ("repository-detail", lambda w: [w.project.name, w.tag.repository.name], "Provision"),
]


@dataclass
class World:
    """One object of each kind, so every detail page has something to show."""

    project: Project
    membership: Membership
    tag: Tag
    registry: ExternalRegistry
    host: ContainerHost
    container: Container
    endpoint: Endpoint
    rule: Rule
    execution: Execution
    task: Task
    job: Job
    gc_job: Job
    container_job: Job
    spare_endpoint: Endpoint
    scanner: ScannerRegistration
    user: User
    group: Group
    credential: Credential
    certificate: TrustedCertificate
    allowlisted: AllowlistEntry
    system_allowlisted: AllowlistEntry


@dataclass(frozen=True)
class Route:
    """A named UI route and its pattern's text (the text decides which kind of object a `pk` names)."""

    name: str
    pattern: str
    arguments: tuple[str, ...]


def ui_routes() -> list[Route]:
    """Every named route of the UI apps' URL confs, in their order."""
    routes: list[Route] = []

    def walk(patterns: list, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern) and entry.name:
                text = prefix + str(entry.pattern)
                routes.append(Route(entry.name, text, tuple(re.findall(r"<(?:\w+:)?(\w+)>", text))))

    for app in UI_APPS:
        walk(import_module(f"{app}.urls").urlpatterns, "")
    return routes


# Which object a `pk` (or a `name` that is not a project's) stands for, by the start of the route's pattern.
OBJECT_BY_PREFIX = [
    ("hosts/", "host"),
    ("containers/", "container"),
    ("registries/replication/rules/", "rule"),
    ("registries/<int:pk>", "registry"),
    ("replication/executions/", "execution"),
    ("identities/certificates/", "certificate"),
    ("identities/credentials/", "credential"),
    ("configuration/scanning/scanners/", "scanner"),
    ("configuration/cve-allowlist/", "system_allowlisted"),
    ("projects/<str:name>/cve-allowlist/", "allowlisted"),
]


def arguments(route: Route, world: World) -> dict[str, str]:
    """The route's arguments for the world's objects; KeyError names one the test does not know."""
    owner = next((attribute for prefix, attribute in OBJECT_BY_PREFIX if route.pattern.startswith(prefix)), "")
    values: dict[str, str] = {}
    for argument in route.arguments:
        if argument == "pk" and not owner:
            raise KeyError(f"pk of {route.pattern}: add its prefix to OBJECT_BY_PREFIX")
        if argument == "pk" or (argument == "name" and owner not in ("", "allowlisted")):
            value = getattr(world, owner).pk if argument == "pk" else getattr(world, owner).name
        else:
            value = {
                "name": world.project.name,
                "repository": world.tag.repository.name,
                "tag": world.tag.name,
                "registry": "integrated",
                "job_id": job_of(route, world).pk,
                "task_id": world.task.pk,
                "token_id": world.user.api_tokens.first().pk if world.user.api_tokens.exists() else None,
            }[argument]
        if value is None:
            raise KeyError(argument)
        values[argument] = str(value)
    return values


def job_of(route: Route, world: World) -> Job:
    """The job a `job_id` names: each app's job pages show only its own kinds."""
    if route.pattern.startswith("configuration/gc/"):
        return world.gc_job
    if route.pattern.startswith("containers/"):
        return world.container_job
    return world.job


def url_of(route: Route, world: World) -> str:
    """The route's address with its arguments and the query its dialog needs."""
    address = reverse(route.name, kwargs=arguments(route, world))
    query = QUERIES.get(route.name, lambda w: {})(world)
    return address + ("?" + urlencode(query) if query else "")


def self_signed_pem() -> str:
    """A certificate to pin, as the trust dialog would."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "registry.test")])
    certificate = certificate_builder(name, name, key.public_key(), 30).sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def page(page: Page) -> Page:
    """The conftest's page with axe-core in every document it opens. An init script, not a script tag: the
    Content-Security-Policy refuses inline scripts, and the portal must not serve axe itself."""
    page.add_init_script(path=str(AXE))
    return page


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real docker-registry (its events go nowhere: the fixture records the tags itself)."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def world(settings: Any, registry: Registry, transactional_db: None, admin: User, tmp_path: Path) -> World:
    """One of each object, created the way the portal records them."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    point_portal_at(settings, registry)
    actor = Actor(admin, "127.0.0.1")
    scanning.import_path(Actor.system("test"), write_feeds(tmp_path / "feeds"))
    project = Project.objects.create(name="shipyard")
    tag = pushed(registry, project, "shipyard/app", "1.0", build_vulnerable_image(tmp_path / "dpkg"))
    scanning.start_scan(actor, tag)
    assert ImageScan.objects.get(digest=tag.digest).state == ScanState.SUCCEEDED
    developer = User.objects.create_user("e2e-developer", password=PASSWORD, first_name="Dev", email="d@example.com")
    viewer = User.objects.create_user("e2e-viewer", password=PASSWORD)
    membership = Membership.objects.create(project=project, user=developer, role=Role.DEVELOPER)
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    group = Group.objects.create(name="operators")
    group.members.add(developer)
    Membership.objects.create(project=project, group=group, role=Role.VIEWER)
    create_token(Actor(developer, "127.0.0.1"), "ci")
    credential = Credential.objects.create(name="ci-login", kind=CredentialKind.PASSWORD, username="ci")
    pem = self_signed_pem()
    loaded = x509.load_pem_x509_certificate(pem.encode())
    certificate = TrustedCertificate.objects.create(
        address="127.0.0.1:5443",
        pem=pem,
        subject=loaded.subject.rfc4514_string(),
        issuer=loaded.issuer.rfc4514_string(),
        not_before=loaded.not_valid_before_utc,
        not_after=loaded.not_valid_after_utc,
        sha1=fingerprint(loaded, hashes.SHA1()),
        sha256=fingerprint(loaded, hashes.SHA256()),
    )
    external = ExternalRegistry.objects.create(name="mirror", address="https://127.0.0.1:5443", project=project)
    host = ContainerHost.objects.create(project=project, name="builder", url="tcp://127.0.0.1:1")
    container = Container.objects.create(host=host, name="web", image="shipyard/app:1.0", state=ContainerState.EXITED)
    endpoint = Endpoint.objects.create(name="dr-site", url="https://127.0.0.1:5443", credential=credential)
    rule = Rule.objects.create(name="to-dr", project=project, endpoint=endpoint, enabled=False)
    now = datetime.datetime.now(datetime.UTC)
    finished = {"state": JobState.SUCCEEDED, "started": now, "finished": now, "progress": 100}
    execution = Execution.objects.create(
        rule=rule, job=Job.objects.create(kind="replication", **finished), cause=Execution.Cause.MANUAL
    )
    task = Task.objects.create(
        execution=execution,
        job=Job.objects.create(kind="replication_task", **finished),
        repository="shipyard/app",
        destination="shipyard/app",
        tags=["1.0"],
        tags_copied=1,
    )
    job = Job.objects.create(kind="directory_sync", **finished)
    JobLogLine.objects.create(job=job, text="synchronized 0 users")
    gc_job = Job.objects.create(kind=GARBAGE_COLLECTION, **finished)
    JobLogLine.objects.create(job=gc_job, text="freed 0 B")
    container_job = Job.objects.create(kind=PROVISION, target=f"{project.name}/{container.name}", **finished)
    JobLogLine.objects.create(job=container_job, text="started")
    scanner = ScannerRegistration.objects.create(
        name="clair-east", kind=ScannerKind.CLAIR, indexer_url="http://127.0.0.1:1", matcher_url="http://127.0.0.1:1"
    )
    return World(
        project=project,
        membership=membership,
        tag=tag,
        registry=external,
        host=host,
        container=container,
        endpoint=endpoint,
        rule=rule,
        execution=execution,
        task=task,
        job=job,
        gc_job=gc_job,
        container_job=container_job,
        spare_endpoint=Endpoint.objects.create(name="lab", url="https://127.0.0.1:6443"),
        scanner=scanner,
        user=developer,
        group=group,
        credential=credential,
        certificate=certificate,
        allowlisted=AllowlistEntry.objects.create(project=project, cve="CVE-0000-1004"),
        system_allowlisted=AllowlistEntry.objects.create(cve="CVE-0000-1006"),
    )


def axe_violations(page: Page, *, whole_document: bool = True) -> list[str]:
    """The critical and serious violations axe finds on the page, one line each: rule, impact, target."""
    assert page.evaluate("() => typeof axe") == "object", "axe-core was not injected: use the `page` of this module"
    # axe skips what is hidden: open the row menus and other <details> so their contents are checked too.
    page.evaluate("() => document.querySelectorAll('details').forEach((details) => { details.open = true; })")
    disabled = {} if whole_document else {rule: {"enabled": False} for rule in DOCUMENT_RULES}
    results = page.evaluate(
        "([tags, rules]) => axe.run(document, {runOnly: {type: 'tag', values: tags}, rules: rules})",
        [AXE_TAGS, disabled],
    )
    return [
        f"{violation['id']} ({violation['impact']}) at {', '.join(map(str, node['target']))}: {violation['help']}"
        f" | {node['html'][:160]} | {' '.join(node['failureSummary'].split())[:300]}"
        for violation in results["violations"]
        if violation["impact"] in FAILING_IMPACTS
        for node in violation["nodes"]
    ]


def settled(page: Page) -> None:
    """Wait until htmx has loaded what the page asks for on load."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


@dataclass
class Survey:
    """What a walk through the routes found."""

    checked: list[str]
    refused: list[str]
    violations: list[str]


def survey(page: Page, world: World, *, may_refuse: bool, width: int = WIDE, only: set[str] | None = None) -> Survey:
    """Open every UI route and run axe on it. A route that answers 403/404 is refused (a role may not see it)."""
    page.set_viewport_size({"width": width, "height": 900})
    result = Survey([], [], [])
    problems: list[str] = []
    for route in ui_routes():
        if route.name in UNREACHABLE or (only is not None and route.name not in only):
            continue
        try:
            address = url_of(route, world)
        except KeyError as missing:
            problems.append(f"{route.name}: no value for the argument {missing}; teach arguments() or UNREACHABLE")
            continue
        # Asked first without the browser: an empty 405 is a navigation error, and a redirect would be followed.
        status = page.request.get(address, max_redirects=0).status
        if status == 405:
            # An action route (POST only): nothing to see, its buttons are on the page that offers it.
            result.refused.append(f"{route.name} (POST only)")
            continue
        if status in (403, 404) and may_refuse:
            result.refused.append(f"{route.name} ({status})")
            continue
        if status != 200:
            problems.append(f"{route.name}: GET {address} answered {status}; fix the world or list it in UNREACHABLE")
            continue
        page.goto(address)
        settled(page)
        whole = page.evaluate("() => !!document.querySelector('main')")
        result.checked.append(f"{route.name}{'' if whole else ' (fragment)'} at {width}px")
        result.violations += [
            f"{route.name} {address} @{width}px: {line}" for line in axe_violations(page, whole_document=whole)
        ]
    assert not problems, "routes the test could not open:\n" + "\n".join(problems)
    return result


def report(name: str, result: Survey, page: Page) -> None:
    """Print what was checked and fail on any violation (pytest shows the print with -s or on failure)."""
    print(f"\n{name}: checked {len(result.checked)} routes; not shown to this user: {', '.join(result.refused)}")
    print("\n".join(result.checked))
    assert not result.violations, f"{len(result.violations)} critical/serious violations:\n" + "\n".join(
        result.violations
    )


def test_every_page_has_no_serious_violation_for_an_admin(
    portal: Portal, page: Page, world: World, admin: User
) -> None:
    portal.log_in(admin.username)
    report("portal admin", survey(page, world, may_refuse=False), page)


def test_layout_pages_have_no_serious_violation_at_800_px(
    portal: Portal, page: Page, world: World, admin: User
) -> None:
    portal.log_in(admin.username)
    without_arguments = {route.name for route in ui_routes() if not route.arguments}
    report("portal admin at 800px", survey(page, world, may_refuse=False, width=NARROW, only=without_arguments), page)


@pytest.mark.parametrize("username", ["e2e-developer", "e2e-viewer"])
def test_every_page_a_member_sees_has_no_serious_violation(
    portal: Portal, page: Page, world: World, username: str
) -> None:
    portal.log_in(username)
    report(username, survey(page, world, may_refuse=True), page)


def test_the_login_page_has_no_serious_violation(page: Page, live_server: Any) -> None:
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/login/")
        assert not axe_violations(page), axe_violations(page)


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_the_main_dialogs_have_no_serious_violation(
    portal: Portal, page: Page, world: World, admin: User, width: int
) -> None:
    portal.log_in(admin.username)
    page.set_viewport_size({"width": width, "height": 900})
    violations: list[str] = []
    for route, route_arguments, button in DIALOGS:
        page.goto(reverse(route, args=route_arguments(world)))
        settled(page)
        page.get_by_role("link", name=re.compile("^" + re.escape(button))).first.click()
        dialog = portal.dialog()
        expect(dialog).to_be_visible()
        violations += [f"{route} dialog '{button}' @{width}px: {line}" for line in axe_violations(page)]
        page.screenshot(path=str(SCREENSHOTS / f"accessibility_{route}_dialog_{width}.png"))
    assert not violations, "\n".join(violations)
