"""The seed's main workflows in a real browser: log in, create a project, add a member, admin role, logs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.core.audit import Actor, record
from portal.core.models import Group, User
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


def test_admin_logs_in_and_sees_the_administration_menu(portal, admin):
    portal.page.goto("/")
    expect(portal.page).to_have_url(f"{portal.page.url.split('/login')[0]}/login/?next=/")
    expect(portal.page.locator("#ca-sha256")).not_to_be_empty()
    portal.log_in(admin.username)
    nav = portal.page.get_by_role("navigation", name="Main")
    for item in ("Home", "Configuration", "Identity Management", "Projects", "Logs"):
        expect(nav.get_by_role("link", name=item, exact=True)).to_be_visible()


def test_wrong_password_shows_an_error(portal, admin):
    portal.page.goto("/login/")
    portal.page.get_by_label("User name").fill(admin.username)
    portal.page.get_by_label("Password").fill("not-the-password")
    portal.page.get_by_role("button", name="Log in").click()
    expect(portal.page.get_by_role("alert")).to_have_text("Invalid user name or password.")


def test_admin_creates_a_project(portal, admin):
    portal.log_in(admin.username)
    portal.open_nav("Projects")
    portal.page.get_by_role("link", name="+ Project").click()
    dialog = portal.dialog()
    dialog.get_by_label("Project name").fill("Web App")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_contain_text("lowercase letters and digits")
    dialog.get_by_label("Project name").fill("web-app")
    dialog.get_by_text("Public", exact=True).click()
    dialog.get_by_role("button", name="OK").click()
    expect(portal.page.get_by_role("heading", name="web-app")).to_be_visible()
    portal.expect_message("Project 'web-app' created.")
    assert Project.objects.get(name="web-app").public


def test_admin_adds_a_member_to_a_project(portal, admin):
    Project.objects.create(name="alpha")
    carol = User.objects.create_user("carol", password=PASSWORD, first_name="Carol", last_name="Jones")
    portal.log_in(admin.username)
    portal.page.goto("/projects/alpha/members/")
    portal.page.get_by_role("link", name="+ Add").click()
    dialog = portal.dialog()
    dialog.get_by_placeholder("Search users and groups").fill("caro")
    dialog.get_by_text("carol (Carol Jones)").click()
    dialog.get_by_label("Role in project").select_option(label="Developer")
    dialog.get_by_role("button", name="Add").click()
    row = portal.page.locator('tr[data-member="carol"]')
    expect(row).to_contain_text("Developer")
    portal.expect_message("Added user 'carol' to project 'alpha'.")
    assert Membership.objects.get(user=carol).role == Role.DEVELOPER


def test_admin_assigns_the_admin_role_to_a_group(portal, admin):
    ops = Group.objects.create(name="ops-team")
    portal.log_in(admin.username)
    portal.open_nav("Identity Management")
    portal.page.get_by_placeholder("Search users and groups").fill("ops")
    # The unfiltered list already shows the group: wait for the search to replace the table
    # before ticking, or the swap would clear the tick.
    expect(portal.page).to_have_url(re.compile(r"q=ops"))
    row = portal.page.locator('tr[data-identity="group:ops-team"]')
    expect(row).to_contain_text("Group")
    row.get_by_role("checkbox").check()
    portal.page.get_by_role("button", name="Assign Admin Role", exact=True).click()
    portal.expect_message("Assigned the Management Portal administrator role to ops-team.")
    expect(portal.page.locator('tr[data-identity="group:ops-team"]')).to_contain_text("Yes")
    ops.refresh_from_db()
    assert ops.is_portal_admin


def test_admin_filters_the_logs(portal, admin):
    actor = Actor(admin, "127.0.0.1")
    record(actor, "create", "project", "alpha")
    record(actor, "push", "repository", "alpha/web")
    portal.log_in(admin.username)
    portal.open_nav("Logs")
    table = portal.page.get_by_role("table", name="Logs")
    expect(table).to_contain_text("alpha/web")
    portal.page.get_by_placeholder("Filter Logs").fill("push")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("alpha/web")
    expect(portal.page).to_have_url(f"{portal.page.url.split('?')[0]}?q=push")


def test_admin_narrows_the_logs_by_operation_and_result_and_pages_to_older_events(portal, admin):
    actor = Actor(admin, "127.0.0.1")
    for number in range(22):
        record(actor, "push", "repository", f"alpha/web:{number}")
    record(actor, "delete", "repository", "alpha/old", outcome="failure")
    portal.log_in(admin.username)
    portal.open_nav("Logs")
    table = portal.page.get_by_role("table", name="Logs")
    portal.page.get_by_label("Operation").select_option("delete")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("alpha/old")
    expect(portal.page).to_have_url(f"{portal.page.url.split('?')[0]}?operation=delete")
    portal.page.get_by_label("Operation").select_option("push")
    portal.page.get_by_label("Result").select_option("success")
    expect(portal.page).to_have_url(f"{portal.page.url.split('?')[0]}?operation=push&outcome=success")
    expect(table).to_contain_text("alpha/web:21")
    portal.page.get_by_role("link", name="Older").click()
    expect(table).to_contain_text("alpha/web:0")
    expect(table).not_to_contain_text("alpha/web:21")
    expect(portal.page.get_by_role("link", name="Newer")).to_be_visible()


def test_admin_assigns_project_roles_to_a_user(portal, admin):
    alpha, beta = Project.objects.create(name="alpha"), Project.objects.create(name="beta")
    carol = User.objects.create_user("carol", password=PASSWORD)
    Membership.objects.create(project=alpha, user=carol, role=Role.VIEWER)
    portal.log_in(admin.username)
    portal.page.goto("/identities/?q=carol")
    portal.page.locator('tr[data-identity="user:carol"]').get_by_role("checkbox").check()
    portal.page.get_by_role("button", name="Assign Project Roles").click()
    dialog = portal.dialog()
    expect(dialog.get_by_label("Project", exact=True)).to_have_value("alpha")
    dialog.get_by_role("button", name="Add a project row").click()
    expect(dialog.get_by_label("Project", exact=True)).to_have_count(2)
    dialog.get_by_label("Project", exact=True).nth(1).select_option("beta")
    dialog.get_by_label("Role", exact=True).nth(1).select_option(label="DevOps administrator")
    dialog.get_by_role("button", name="Remove this project row").first.click()
    dialog.get_by_role("button", name="OK").click()
    portal.expect_message("Project roles of user 'carol' saved.")
    expect(portal.page.locator('tr[data-identity="user:carol"]')).to_contain_text("beta: DevOps administrator")
    assert dict(Membership.objects.filter(user=carol).values_list("project__name", "role")) == {"beta": "admin"}
    assert beta.memberships.count() == 1


def test_project_list_is_usable_in_a_narrow_window(portal, admin):
    Project.objects.create(name="alpha")
    portal.page.set_viewport_size({"width": 800, "height": 700})
    portal.log_in(admin.username)
    portal.open_nav("Projects")
    expect(portal.page.get_by_role("link", name="+ Project")).to_be_visible()
    expect(portal.page.get_by_role("link", name="alpha", exact=True)).to_be_visible()
    portal.page.get_by_placeholder("Search projects").fill("zzz")
    expect(portal.page.get_by_role("table", name="Projects")).to_contain_text("No projects match 'zzz'.")


def test_admin_creates_edits_and_deletes_a_group(portal, admin):
    User.objects.create_user("carol", password=PASSWORD, first_name="Carol", last_name="Jones")
    User.objects.create_user("dave", password=PASSWORD)
    portal.log_in(admin.username)
    portal.open_nav("Identity Management")
    expect(portal.page.locator('tr[data-identity="user:carol"]')).to_be_visible()  # known users without typing
    portal.page.get_by_role("link", name="+ Group").click()
    dialog = portal.dialog()
    dialog.get_by_label("Group name").fill("ops-team")
    dialog.get_by_placeholder("Filter users").fill("jones")
    expect(dialog.get_by_label("dave")).to_be_hidden()
    dialog.get_by_label("carol (Carol Jones)").check()
    dialog.get_by_role("button", name="OK").click()
    portal.expect_message("Group 'ops-team' created.")
    row = portal.page.locator('tr[data-identity="group:ops-team"]')
    expect(row).to_contain_text("Local")
    assert list(Group.objects.get(name="ops-team").members.values_list("username", flat=True)) == ["carol"]

    row.get_by_role("checkbox").check()
    portal.page.get_by_role("button", name="Edit", exact=True).click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("heading", name="Edit Group ops-team")).to_be_visible()
    expect(dialog.get_by_label("carol (Carol Jones)")).to_be_checked()
    dialog.get_by_label("carol (Carol Jones)").uncheck()
    dialog.get_by_label("dave").check()
    dialog.get_by_role("button", name="OK").click()
    portal.expect_message("Group 'ops-team' saved.")
    assert list(Group.objects.get(name="ops-team").members.values_list("username", flat=True)) == ["dave"]

    portal.page.locator('tr[data-identity="group:ops-team"]').get_by_role("checkbox").check()
    portal.page.once("dialog", lambda confirm: confirm.accept())
    portal.page.get_by_role("button", name="Delete", exact=True).click()
    portal.expect_message("Deleted ops-team.")
    assert not Group.objects.filter(name="ops-team").exists()


def test_duplicate_group_name_is_shown_in_the_dialog(portal, admin):
    Group.objects.create(name="ops-team")
    portal.log_in(admin.username)
    portal.page.goto("/identities/")
    portal.page.get_by_role("link", name="+ Group").click()
    dialog = portal.dialog()
    dialog.get_by_label("Group name").fill("ops-team")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_contain_text("group 'ops-team' already exists")
