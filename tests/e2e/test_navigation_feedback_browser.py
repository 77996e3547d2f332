"""Issue 17's walkthrough fixes in a real browser, at a desktop (1440 px) and a narrow (800 px) width: one project
selection kept per user, names that agree, dialogs that show their first error and keep what was typed, spinners
while a remote system is asked, and a favicon."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from portal.core.audit import Actor
from portal.core.jobs import create_job
from portal.core.models import Job, User
from projects.models import Membership, Project, Role
from registries.models import ExternalRegistry
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal

pytestmark = pytest.mark.e2e

# How long the slow registry takes to answer: long enough to see the spinner, short of any client timeout.
SLOW_SECONDS = 2.5


def snap(page: Page, width: int, step: str) -> None:
    """Save a screenshot of a step (test-output/screenshots), named with the window's width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret injects a style sheet, which the Content-Security-Policy refuses (and the
    # page fixture counts as the page's fault) when the screenshot is taken while an htmx request is in flight.
    page.screenshot(path=str(SCREENSHOTS / f"navui_{step}_{width}px.png"), full_page=True, caret="initial")


def selector(page: Page):
    """The header's drop-down of projects."""
    return page.get_by_label("Project", exact=True)


def make_user(name: str, **fields: object) -> User:
    """A user to log in as."""
    return User.objects.create_user(name, password=PASSWORD, **fields)


# 2. One project selection, kept per user.


def test_the_header_keeps_one_selection_per_user_and_the_library_uses_it(
    page: Page, portal: Portal, admin: User, width: int
) -> None:
    Project.objects.create(name="beta")
    Project.objects.create(name="gamma")
    portal.log_in(admin.username)
    expect(selector(page)).to_have_value("beta")  # nothing picked yet: the first by name

    # Creating a project does not switch the header, even one that sorts first.
    portal.open_nav("Projects")
    page.get_by_role("link", name="+ Project").click()
    portal.dialog().get_by_label("Name").fill("alpha")
    page.get_by_role("dialog").get_by_role("button", name="OK").click()
    portal.expect_message("Project 'alpha' created.")
    expect(selector(page)).to_have_value("beta")

    # A pick survives logging out and in again (another session), and the Library searches the header's project.
    with page.expect_navigation():
        selector(page).select_option("gamma")
    page.get_by_role("button", name="Log out").click()
    portal.log_in(admin.username)
    expect(selector(page)).to_have_value("gamma")
    portal.open_nav("Repositories")
    expect(page.locator('[data-field="search-project"]')).to_contain_text("gamma")
    expect(page.locator("#search-project")).to_have_count(0)  # no second selector to disagree with the header
    snap(page, width, "2_library_uses_header_project")


def test_a_developer_starts_on_the_project_of_their_highest_role(page: Page, portal: Portal, width: int) -> None:
    developer = make_user("dev-dana")
    Project.objects.create(name="aardvark", public=True)  # a guest there, and first by name
    web = Project.objects.create(name="web")
    Membership.objects.create(project=web, user=developer, role=Role.DEVELOPER)
    portal.log_in(developer.username)
    expect(selector(page)).to_have_value("web")
    portal.open_nav("Repositories")
    expect(page.locator('[data-field="search-project"]')).to_contain_text("web")
    expect(selector(page)).to_have_value("web")
    snap(page, width, "2_developer_starts_on_own_project")


# 3. Names that agree.


def test_library_link_text_title_and_breadcrumb_agree(page: Page, portal: Portal, admin: User, width: int) -> None:
    Project.objects.create(name="alpha")
    portal.log_in(admin.username)
    for link in ("Repositories", "Built-In Repositories"):
        portal.open_nav(link)
        expect(page.locator("main h2")).to_have_text(link)
        expect(page).to_have_title(f"{link} · Wharf")
        expect(page.get_by_role("navigation", name="Breadcrumb")).to_have_text(re.compile(rf"Library\s*{link}$"))
        expect(page.locator(".wharf-tabs .nav-link.active")).to_have_text(link)
        snap(page, width, f"3_{link.replace(' ', '_')}")


def test_one_label_per_role_on_every_page(page: Page, portal: Portal, admin: User, width: int) -> None:
    alpha = Project.objects.create(name="alpha")
    Membership.objects.create(project=alpha, user=make_user("ops-olga"), role=Role.ADMIN)
    portal.log_in(admin.username)
    home_role = page.locator('tr:has-text("alpha") td').nth(2)
    expect(home_role).to_have_text("Management Portal administrator")
    portal.open_nav("Projects")
    row = page.locator("tr", has=page.get_by_role("link", name="alpha", exact=True))
    expect(row.locator("td").nth(3)).to_have_text("Management Portal administrator")
    snap(page, width, "3_projects_my_role")
    portal.open_nav("Identity Management")
    olga = page.locator('tr[data-identity="user:ops-olga"]')
    expect(olga).to_contain_text("alpha: DevOps administrator")
    expect(page.locator(f'tr[data-identity="user:{admin.username}"]')).to_contain_text("Yes")
    header = page.locator("table[aria-label='Users and groups'] thead")
    expect(header).to_contain_text("Management Portal administrator")
    snap(page, width, "3_identity_roles")


def test_the_directory_job_table_lists_only_directory_jobs(page: Page, portal: Portal, admin: User, width: int) -> None:
    gc = create_job(Actor.system("test"), "registry_gc", "registry")
    sync = create_job(Actor.system("test"), "directory_sync", "directory")
    Job.objects.filter(pk__in=[gc.pk, sync.pk]).update(state="succeeded")
    portal.log_in(admin.username)
    portal.open_nav("Configuration")
    directory = page.locator("section", has=page.get_by_role("heading", name="Directory"))
    expect(directory.locator(f"#job-{sync.pk}")).to_be_visible()
    expect(directory.locator(f"#job-{gc.pk}")).to_have_count(0)
    snap(page, width, "3_directory_jobs")


# 4. Dialogs.


def test_provision_dialog_fits_and_shows_its_error(page: Page, portal: Portal, admin: User, width: int) -> None:
    shipyard = Project.objects.create(name="shipyard")  # no container host at all
    ExternalRegistry.objects.create(name="mirror", address="http://127.0.0.1:5999", insecure=True, project=shipyard)
    portal.log_in(admin.username)
    portal.open_nav("Containers")
    page.get_by_role("link", name="+ Container").click()
    dialog = portal.dialog()
    dialog.get_by_label("Image").fill("127.0.0.1:5999/library/app:1.0")
    dialog.get_by_label("Name").fill("web-1")
    dialog.get_by_role("button", name="Provision").click()
    error = dialog.get_by_text("no container host that is ON")
    expect(error).to_be_in_viewport()
    expect(dialog.get_by_label("Image")).to_have_value("127.0.0.1:5999/library/app:1.0")
    expect(dialog.get_by_label("Name")).to_have_value("web-1")
    right = page.locator(".modal-content").bounding_box()
    for field in dialog.locator("input:visible, select:visible, textarea:visible").all():
        box = field.bounding_box()
        assert box["x"] + box["width"] <= right["x"] + right["width"] + 0.5, f"{field.get_attribute('name')} overflows"
    snap(page, width, "4_provision_error")


def test_a_refused_member_dialog_keeps_the_search_and_the_pick(
    page: Page, portal: Portal, admin: User, width: int
) -> None:
    alpha = Project.objects.create(name="alpha")
    Membership.objects.create(project=alpha, user=make_user("vic-viewer"), role=Role.VIEWER)
    portal.log_in(admin.username)
    page.goto("/projects/alpha/members/")
    page.get_by_role("link", name="+ Add").click()
    dialog = portal.dialog()
    dialog.get_by_label("User or group").fill("vic-viewer")
    dialog.get_by_label(re.compile(r"^vic-viewer · user")).check()
    dialog.get_by_role("button", name="Add").click()
    expect(dialog.locator(".wharf-field-error, .alert-danger").first).to_be_in_viewport()
    expect(dialog.get_by_label("User or group")).to_have_value("vic-viewer")
    expect(dialog.get_by_label(re.compile(r"^vic-viewer · user"))).to_be_checked()
    expect(dialog).not_to_contain_text("user:vic-viewer")
    snap(page, width, "4_member_duplicate")


# 6. Feedback.


class SlowRegistry(BaseHTTPRequestHandler):
    """A registry on loopback that answers every request after SLOW_SECONDS (an empty V2 answer)."""

    def do_GET(self) -> None:
        time.sleep(SLOW_SECONDS)
        body = b'{"repositories": [], "results": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def slow_registry() -> Iterator[str]:
    """The slow registry's address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_verify_and_search_show_a_spinner_while_they_wait(
    page: Page, portal: Portal, admin: User, width: int, slow_registry: str
) -> None:
    Project.objects.create(name="alpha")
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    page.get_by_role("link", name="+ Registry").click()
    dialog = portal.dialog()
    dialog.get_by_label("Address").fill(slow_registry)
    dialog.get_by_label("Name").fill("slow")
    dialog.get_by_label("Insecure (HTTP)").check()
    dialog.get_by_role("button", name="Verify").click()
    spinner = dialog.get_by_role("status", name="Waiting for the answer")
    expect(spinner).to_be_visible()
    snap(page, width, "6_verify_spinner")
    expect(spinner).to_be_hidden(timeout=SLOW_SECONDS * 4000)

    ExternalRegistry.objects.create(name="slow", address=slow_registry, insecure=True)
    page.goto("/library/search/")
    page.get_by_label("Search images").fill("nginx")
    page.get_by_role("button", name="Search").click()
    searching = page.get_by_role("search").get_by_role("status", name="Searching")
    expect(searching).to_be_visible()
    snap(page, width, "6_search_spinner")
    expect(searching).to_be_hidden(timeout=SLOW_SECONDS * 6000)


def test_every_page_has_a_favicon(page: Page, portal: Portal, admin: User, width: int) -> None:
    answer = page.request.get("/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO header
    portal.log_in(admin.username)
    for link in page.locator("link[rel='icon']").all():
        assert page.request.get(link.get_attribute("href")).ok
    assert page.locator("link[rel='icon']").count() == 2
    snap(page, width, "6_favicon")
