"""The administration pages as each role sees them: login, home, Users & Groups, Configuration, Logs, Profile."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from portal.core import directory, identities
from portal.core.audit import Actor, record
from portal.core.errors import RemoteUnreachable
from portal.core.identities import search_identities
from portal.core.models import ApiToken, AuditEvent, Group, Job, JobState, SystemSettings, User
from portal.core.services import create_token, user_for_token
from projects.models import Membership, Role
from tests.conftest import PASSWORD, logged_in, page_text

pytestmark = pytest.mark.django_db


# Login, logout, home, navigation.


def test_login_page_shows_ca_thumbprints_and_download(client):
    text = page_text(client.get(reverse("login")))
    assert 'id="ca-sha256"' in text
    assert reverse("systeminfo-ca") in text


def test_login_with_password_reaches_home(client, make_user):
    make_user("alice")
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "alice" in page_text(response)


def test_wrong_password_is_refused(client, make_user):
    make_user("alice")
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "Invalid user name or password." in page_text(response)


def test_logout_needs_post(client, make_user):
    client = logged_in(client, make_user("alice"))
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"), follow=True)
    assert "You have been logged out." in page_text(response)
    assert client.get(reverse("home")).status_code == 302


def test_home_lists_my_projects_with_roles(client, role_users):
    text = page_text(logged_in(client, role_users["developer"]).get(reverse("home")))
    assert "alpha" in text and "Developer" in text
    assert "beta" not in text


def test_navigation_for_a_plain_user(client, make_user):
    text = page_text(logged_in(client, make_user("alice")).get(reverse("home")))
    assert reverse("project-list") in text
    assert reverse("profile") in text
    for hidden in ("configuration", "identities", "logs"):
        assert f'href="{reverse(hidden)}"' not in text


def test_navigation_for_a_project_admin_includes_identity_search(client, role_users):
    text = page_text(logged_in(client, role_users["project_admin"]).get(reverse("home")))
    assert f'href="{reverse("identities")}"' in text
    assert f'href="{reverse("configuration")}"' not in text


def test_navigation_for_portal_admin_shows_everything(client, portal_admin):
    text = page_text(logged_in(client, portal_admin).get(reverse("home")))
    for name in ("configuration", "identities", "project-list", "logs"):
        assert f'href="{reverse(name)}"' in text


# Users & Groups.


def test_identities_page_needs_search_right(client, role_users):
    assert logged_in(client, role_users["viewer"]).get(reverse("identities")).status_code == 403


def test_project_admin_searches_without_action_buttons(client, role_users):
    response = logged_in(client, role_users["project_admin"]).get(reverse("identities"), {"q": "alpha"})
    text = page_text(response)
    assert response.status_code == 200
    assert 'data-identity="user:alpha-viewer"' in text
    assert "Assign Admin Role" not in text
    assert 'name="selected"' not in text


def test_search_shows_users_and_groups_with_columns(client, portal_admin, make_user, alpha):
    carol = make_user("carol", first_name="Carol", last_name="Jones", email="carol@example.test")
    ops = Group.objects.create(name="carol-team", is_portal_admin=True)
    Membership.objects.create(project=alpha, user=carol, role=Role.DEVELOPER)
    text = page_text(logged_in(client, portal_admin).get(reverse("identities"), {"q": "carol"}))
    assert 'data-identity="user:carol"' in text
    assert f'data-identity="group:{ops.name}"' in text
    assert "Carol Jones" in text and "carol@example.test" in text
    assert "alpha: Developer" in text  # the role's display name, as every page names it
    assert "Assign Admin Role" in text


def test_htmx_search_returns_only_the_table(client, portal_admin):
    response = logged_in(client, portal_admin).get(reverse("identities"), {"q": "root"}, HTTP_HX_REQUEST="true")
    assert page_text(response).lstrip().startswith('<div id="identity-table"')


def test_directory_warning_is_shown(client, portal_admin, monkeypatch):
    def unreachable(query: str) -> list:
        raise RemoteUnreachable("the directory at ldap://127.0.0.1:1 is unreachable")

    monkeypatch.setattr(directory, "search", unreachable)
    text = page_text(logged_in(client, portal_admin).get(reverse("identities"), {"q": "x"}))
    assert "Directory not searched: the directory at ldap://127.0.0.1:1 is unreachable" in text
    assert "alert-warning" in text


def test_assign_and_unassign_admin_role_to_user(client, portal_admin, make_user):
    carol = make_user("carol")
    client = logged_in(client, portal_admin)
    response = client.post(
        reverse("identity-action"), {"action": "assign_admin", "selected": ["user:carol"], "q": "carol"}, follow=True
    )
    assert "Assigned the Management Portal administrator role to carol." in page_text(response)
    assert response.redirect_chain[-1][0] == reverse("identities") + "?q=carol"
    carol.refresh_from_db()
    assert carol.is_portal_admin
    client.post(reverse("identity-action"), {"action": "unassign_admin", "selected": ["user:carol"]})
    carol.refresh_from_db()
    assert not carol.is_portal_admin


def test_assign_admin_role_to_group(client, portal_admin, group):
    logged_in(client, portal_admin).post(
        reverse("identity-action"), {"action": "assign_admin", "selected": ["group:devs"]}
    )
    group.refresh_from_db()
    assert group.is_portal_admin


def test_assigning_to_unknown_user_shows_message(client, portal_admin):
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"), {"action": "assign_admin", "selected": ["user:ghost"]}, follow=True
    )
    assert "no user named &#x27;ghost&#x27;" in page_text(response)


def test_removing_own_admin_role_is_refused(client, portal_admin):
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"),
        {"action": "unassign_admin", "selected": [f"user:{portal_admin.username}"]},
        follow=True,
    )
    assert "You cannot remove your own administrator role." in page_text(response)


def test_action_without_selection_asks_for_one(client, portal_admin):
    response = logged_in(client, portal_admin).post(reverse("identity-action"), {"action": "delete"}, follow=True)
    assert "Select at least one user or group" in page_text(response)


def test_project_admin_posting_admin_role_gets_403(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("identity-action"), {"action": "assign_admin", "selected": ["user:alpha-project_admin"]}
    )
    assert response.status_code == 403
    assert not User.objects.get(username="alpha-admin").is_portal_admin


def test_disable_enable_and_delete_user(client, portal_admin, make_user):
    carol = make_user("carol")
    client = logged_in(client, portal_admin)
    client.post(reverse("identity-action"), {"action": "disable", "selected": ["user:carol"]})
    carol.refresh_from_db()
    assert not carol.is_active
    client.post(reverse("identity-action"), {"action": "enable", "selected": ["user:carol"]})
    carol.refresh_from_db()
    assert carol.is_active
    response = client.post(reverse("identity-action"), {"action": "delete", "selected": ["user:carol"]}, follow=True)
    assert "Deleted carol." in page_text(response)
    assert not User.objects.filter(username="carol").exists()


def test_disabling_a_group_is_refused_with_a_message(client, portal_admin, group):
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"), {"action": "disable", "selected": ["group:devs"]}, follow=True
    )
    assert "only users can be disabled or enabled" in page_text(response)


def test_assign_projects_dialog_is_prefilled(client, portal_admin, role_users):
    response = logged_in(client, portal_admin).get(
        reverse("identity-projects"), {"selected": "user:alpha-developer"}, HTTP_HX_REQUEST="true"
    )
    text = page_text(response)
    assert "Assign Project Roles to alpha-developer" in text
    assert '<option value="alpha" selected>' in text
    assert '<option value="developer" selected>' in text


def test_assign_projects_sets_exactly_the_listed_roles(client, portal_admin, role_users, alpha, beta):
    data = {"selected": "user:alpha-developer", "project": ["beta", ""], "role": ["viewer", "admin"]}
    response = logged_in(client, portal_admin).post(reverse("identity-projects"), data, follow=True)
    assert "Project roles of user &#x27;alpha-developer&#x27; saved." in page_text(response)
    roles = dict(Membership.objects.filter(user__username="alpha-developer").values_list("project__name", "role"))
    assert roles == {"beta": "viewer"}


def test_assign_projects_to_group(client, portal_admin, group, alpha):
    data = {"selected": "group:devs", "project": ["alpha"], "role": ["admin"]}
    logged_in(client, portal_admin).post(reverse("identity-projects"), data)
    assert Membership.objects.get(group=group, project=alpha).role == Role.ADMIN


def test_assign_projects_listing_a_project_twice_shows_error(client, portal_admin, role_users):
    data = {"selected": "user:alpha-viewer", "project": ["beta", "beta"], "role": ["viewer", "admin"]}
    response = logged_in(client, portal_admin).post(reverse("identity-projects"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "project &#x27;beta&#x27; is listed twice" in page_text(response)


def test_assign_projects_needs_exactly_one_selection(client, portal_admin):
    response = logged_in(client, portal_admin).get(reverse("identity-projects"), follow=True)
    assert "Select exactly one user or group" in page_text(response)


def test_assign_project_row_adds_a_row(client, portal_admin, alpha):
    text = page_text(logged_in(client, portal_admin).get(reverse("identity-project-row")))
    assert 'name="project"' in text and '<option value="alpha">' in text


def test_project_admin_cannot_assign_project_roles(client, role_users):
    client = logged_in(client, role_users["project_admin"])
    data = {"selected": "user:alpha-project_admin", "project": ["beta"], "role": ["admin"]}
    assert client.post(reverse("identity-projects"), data).status_code == 403


def test_create_user(client, portal_admin):
    data = {
        "username": "dave",
        "first_name": "Dave",
        "last_name": "Lee",
        "email": "dave@example.test",
        "password": PASSWORD,
        "password_again": PASSWORD,
    }
    response = logged_in(client, portal_admin).post(reverse("user-create"), data, follow=True)
    assert "User &#x27;dave&#x27; created." in page_text(response)
    assert User.objects.get(username="dave").check_password(PASSWORD)


def test_create_user_shows_password_validator_messages(client, portal_admin):
    data = {"username": "dave", "password": "123", "password_again": "123"}
    response = logged_in(client, portal_admin).post(reverse("user-create"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "This password is too short." in page_text(response)
    assert not User.objects.filter(username="dave").exists()


def test_create_duplicate_user_is_refused(client, portal_admin, make_user):
    make_user("dave")
    data = {"username": "dave", "password": PASSWORD, "password_again": PASSWORD}
    response = logged_in(client, portal_admin).post(reverse("user-create"), data)
    assert response.status_code == 409
    assert "user &#x27;dave&#x27; already exists" in page_text(response)


def test_project_admin_cannot_create_user(client, role_users):
    client = logged_in(client, role_users["project_admin"])
    assert client.get(reverse("user-create")).status_code == 403


def test_edit_local_user(client, portal_admin, make_user):
    carol = make_user("carol")
    client = logged_in(client, portal_admin)
    dialog = client.get(reverse("user-edit"), {"selected": "user:carol"}, HTTP_HX_REQUEST="true")
    assert "Edit User carol" in page_text(dialog)
    data = {"selected": "user:carol", "first_name": "Carol", "last_name": "Jones", "email": "c@example.test"}
    client.post(reverse("user-edit"), {**data, "is_active": "on"})
    carol.refresh_from_db()
    assert carol.get_full_name() == "Carol Jones"
    assert carol.is_active


def test_edit_needs_one_local_user(client, portal_admin, group):
    response = logged_in(client, portal_admin).get(reverse("user-edit"), {"selected": "group:devs"}, follow=True)
    assert "Select exactly one local user to edit." in page_text(response)


def test_empty_search_lists_known_users_and_groups(client, portal_admin, make_user, group):
    make_user("carol")
    text = page_text(logged_in(client, portal_admin).get(reverse("identities")))
    for identity in ("user:carol", f"user:{portal_admin.username}", "group:devs"):
        assert f'data-identity="{identity}"' in text
    assert "Showing the users and groups the portal knows" in text


def test_users_and_groups_sort_by_each_column(client, portal_admin, make_user, group):
    make_user("carol", first_name="Zoe", email="a@example.test")
    make_user("bert", first_name="Anna", email="z@example.test", is_portal_admin=True)
    page = logged_in(client, portal_admin)

    def order(sort: str) -> list[str]:
        """The rows in the order the page shows them."""
        text = page_text(page.get(reverse("identities"), {"sort": sort}))
        rows = ["user:carol", "user:bert", "group:devs", f"user:{portal_admin.username}"]
        return sorted(rows, key=lambda row: text.index(f'data-identity="{row}"'))

    assert order("name") == ["user:bert", "user:carol", "group:devs", "user:root-admin"]
    assert order("-name") == ["user:root-admin", "group:devs", "user:carol", "user:bert"]
    assert order("full_name") == ["user:root-admin", "user:bert", "group:devs", "user:carol"]
    assert order("email")[:3] == ["group:devs", "user:root-admin", "user:carol"]
    assert order("type") == ["group:devs", "user:bert", "user:carol", "user:root-admin"]
    assert order("-admin")[:2] == ["user:root-admin", "user:bert"]  # descending: the names too
    assert order("nonsense") == order("")
    text = page_text(page.get(reverse("identities"), {"sort": "-name"}))
    assert 'aria-sort="descending"' in text and 'href="?sort=name"' in text


def test_empty_search_prompts_to_search_the_directory(client, portal_admin, settings):
    settings.LDAP_URL = "ldap://directory.example.test"
    text = page_text(logged_in(client, portal_admin).get(reverse("identities")))
    assert "to search the directory too" in text


def test_empty_search_does_not_ask_the_directory(portal_admin, monkeypatch):
    def unexpected(query: str) -> list:
        raise AssertionError("the directory was asked")

    monkeypatch.setattr(directory, "search", unexpected)
    results = search_identities("", portal_admin)
    assert [e.name for e in results.entries] == [portal_admin.username]
    assert results.warning == ""


def test_empty_search_is_capped_at_the_limit(db, monkeypatch):
    monkeypatch.setattr(identities, "LIMIT", 3)
    User.objects.bulk_create([User(username=f"user{n}") for n in range(5)])
    Group.objects.bulk_create([Group(name=f"group{n}") for n in range(2)])
    results = search_identities("", None)
    assert [e.name for e in results.entries] == ["user0", "user1", "user2", "group0", "group1"]
    assert results.capped


def test_users_and_groups_shows_one_page_at_a_time(client, portal_admin):
    User.objects.bulk_create([User(username=f"user{n:02}") for n in range(30)])
    Group.objects.bulk_create([Group(name=f"group{n:02}") for n in range(3)])
    client = logged_in(client, portal_admin)
    first = page_text(client.get(reverse("identities")))
    assert first.count('data-identity="user:') == 25
    assert first.count('data-identity="group:') == 3
    assert "Page 1" in first and "?page=2" in first
    second = page_text(client.get(reverse("identities"), {"page": 2}))
    users = re.findall(r'data-identity="user:([^"]+)"', second)
    assert users == [f"user{n:02}" for n in range(24, 30)]  # the admin sorts among them on page 1
    assert 'data-identity="group:' not in second
    assert "Page 2" in second and "?page=1" in second and "?page=3" not in second


@pytest.mark.parametrize("page", ["0", "-1", "x", "99999999999999999999"])
def test_users_and_groups_bad_page_number_shows_page_one(client, portal_admin, page):
    response = logged_in(client, portal_admin).get(reverse("identities"), {"page": page})
    assert response.status_code == 200
    assert f'data-identity="user:{portal_admin.username}"' in page_text(response)


def test_project_admin_sees_no_group_or_user_buttons(client, role_users):
    text = page_text(logged_in(client, role_users["project_admin"]).get(reverse("identities")))
    assert "+ Group" not in text and "+ User" not in text
    assert 'data-identity="user:alpha-viewer"' in text


def test_project_admin_cannot_create_or_edit_groups(client, role_users, group):
    client = logged_in(client, role_users["project_admin"])
    assert client.get(reverse("group-create")).status_code == 403
    assert client.post(reverse("group-create"), {"name": "ops"}).status_code == 403
    assert (
        client.post(reverse("group-edit"), {"selected": "group:devs", "members": ["alpha-viewer"]}).status_code == 403
    )
    assert not Group.objects.filter(name="ops").exists()
    assert not group.members.exists()


def test_admin_sees_the_group_button(client, portal_admin):
    text = page_text(logged_in(client, portal_admin).get(reverse("identities")))
    assert f'hx-get="{reverse("group-create")}"' in text


def test_group_dialog_offers_the_known_users(client, portal_admin, make_user):
    make_user("carol", first_name="Carol", last_name="Jones")
    text = page_text(logged_in(client, portal_admin).get(reverse("group-create"), HTTP_HX_REQUEST="true"))
    assert "New Group" in text
    assert 'value="carol"' in text and "carol (Carol Jones)" in text


def test_create_group_with_members(client, portal_admin, make_user):
    carol, dave = make_user("carol"), make_user("dave")
    data = {"name": "ops", "members": ["carol", "dave"]}
    response = logged_in(client, portal_admin).post(reverse("group-create"), data, follow=True)
    assert "Group &#x27;ops&#x27; created." in page_text(response)
    assert response.redirect_chain[-1][0] == reverse("identities") + "?q=ops"
    ops = Group.objects.get(name="ops")
    assert ops.source == "local"
    assert set(ops.members.all()) == {carol, dave}


def test_create_duplicate_group_shows_the_conflict_in_the_dialog(client, portal_admin, group):
    response = logged_in(client, portal_admin).post(reverse("group-create"), {"name": "DEVS"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    text = page_text(response)
    assert "group &#x27;DEVS&#x27; already exists" in text
    assert 'role="dialog"' in text


def test_create_group_needs_a_name(client, portal_admin):
    response = logged_in(client, portal_admin).post(reverse("group-create"), {"name": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "This field is required." in page_text(response)
    assert not Group.objects.exists()


def test_edit_opens_the_group_dialog_with_current_members(client, portal_admin, make_user, group):
    group.members.add(make_user("carol"))
    make_user("dave")
    response = logged_in(client, portal_admin).get(
        reverse("identity-edit"), {"selected": "group:devs"}, HTTP_HX_REQUEST="true"
    )
    text = page_text(response)
    assert "Edit Group devs" in text
    assert 'value="carol" id="id_members_0" checked>' in text  # current members first, checked
    assert 'value="dave" id="id_members_1">' in text


def test_edit_dispatches_users_to_the_user_dialog(client, portal_admin, make_user):
    make_user("carol")
    response = logged_in(client, portal_admin).get(
        reverse("identity-edit"), {"selected": "user:carol"}, HTTP_HX_REQUEST="true"
    )
    assert "Edit User carol" in page_text(response)


def test_edit_group_members(client, portal_admin, make_user, group):
    carol, dave = make_user("carol"), make_user("dave")
    group.members.add(carol)
    data = {"selected": "group:devs", "q": "dev", "members": ["dave"]}
    response = logged_in(client, portal_admin).post(reverse("group-edit"), data, follow=True)
    assert "Group &#x27;devs&#x27; saved." in page_text(response)
    assert response.redirect_chain[-1][0] == reverse("identities") + "?q=dev"
    assert list(group.members.all()) == [dave]
    event = AuditEvent.objects.get(action="update", resource_type="group")
    assert event.resource_name == "devs"


def test_edit_group_removing_every_member(client, portal_admin, make_user, group):
    group.members.add(make_user("carol"))
    logged_in(client, portal_admin).post(reverse("group-edit"), {"selected": "group:devs"})
    assert not group.members.exists()


def test_directory_group_members_cannot_be_edited(client, portal_admin):
    Group.objects.create(name="ldap-devs", source="ldap")
    response = logged_in(client, portal_admin).get(
        reverse("identity-edit"), {"selected": "group:ldap-devs"}, follow=True
    )
    assert "Directory groups get their members from the directory." in page_text(response)


def test_delete_local_group(client, portal_admin, group, alpha):
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"), {"action": "delete", "selected": ["group:devs"]}, follow=True
    )
    assert "Deleted devs." in page_text(response)
    assert not Group.objects.filter(name="devs").exists()
    assert not Membership.objects.filter(project=alpha).exists()
    assert AuditEvent.objects.filter(action="delete", resource_type="group", resource_name="devs").exists()


def test_delete_unknown_group_shows_message(client, portal_admin):
    response = logged_in(client, portal_admin).post(
        reverse("identity-action"), {"action": "delete", "selected": ["group:ghosts"]}, follow=True
    )
    assert "no group named &#x27;ghosts&#x27;" in page_text(response)


# Configuration.


def test_configuration_is_for_portal_admins(client, role_users):
    assert logged_in(client, role_users["project_admin"]).get(reverse("configuration")).status_code == 403


def test_configuration_shows_settings_and_download(client, portal_admin):
    text = page_text(logged_in(client, portal_admin).get(reverse("configuration")))
    assert "Token Expiration (Minutes)" in text
    assert 'value="30"' in text
    assert reverse("systeminfo-ca") in text
    assert "Synchronize now" in text


def test_save_system_settings(client, portal_admin):
    data = {"token_expiration_minutes": 45, "scan_schedule": "off", "scan_time": "04:30", "audit_retention_days": 90}
    response = logged_in(client, portal_admin).post(reverse("configuration"), data, follow=True)
    assert "System settings saved." in page_text(response)
    current = SystemSettings.load()
    assert current.token_expiration_minutes == 45
    assert current.scan_schedule == "off"
    assert current.scan_time == datetime.time(4, 30)


def test_out_of_range_token_expiration_shows_service_message(client, portal_admin):
    data = {"token_expiration_minutes": 0, "scan_schedule": "daily", "scan_time": "03:00", "audit_retention_days": 90}
    response = logged_in(client, portal_admin).post(reverse("configuration"), data)
    assert response.status_code == 400
    assert "Enter a number of minutes from 1 to 525600." in page_text(response)


def test_synchronize_without_directory_shows_why(client, portal_admin, settings):
    settings.LDAP_URL = ""
    response = logged_in(client, portal_admin).post(reverse("directory-sync"), follow=True)
    assert "No directory is configured" in page_text(response)
    assert not Job.objects.exists()


def test_project_admin_posting_sync_gets_403(client, role_users):
    assert logged_in(client, role_users["project_admin"]).post(reverse("directory-sync")).status_code == 403


def test_running_job_row_polls_and_finished_does_not(client, portal_admin):
    running = Job.objects.create(kind="directory_sync", state=JobState.RUNNING, progress=40)
    running.log_lines.create(text="line one")
    done = Job.objects.create(kind="directory_sync", state=JobState.SUCCEEDED, progress=100)
    client = logged_in(client, portal_admin)
    text = page_text(client.get(reverse("configuration")))
    assert f'id="job-{running.pk}" hx-get="{reverse("job-row", args=[running.pk])}" hx-trigger="every 2s"' in text
    assert f'id="job-{done.pk}">' in text
    row = page_text(client.get(reverse("job-row", args=[running.pk])))
    assert row.lstrip().startswith("<tr") and "40%" in row
    assert "line one" in page_text(client.get(reverse("job-log", args=[running.pk]), HTTP_HX_REQUEST="true"))


# Logs.


def test_logs_are_for_portal_admins(client, role_users):
    assert logged_in(client, role_users["project_admin"]).get(reverse("logs")).status_code == 403


def test_logs_filter(client, portal_admin, alpha):
    actor = Actor(portal_admin, "127.0.0.1")
    record(actor, "push", "repository", "alpha/web", alpha)
    record(actor, "create", "user", "zed")
    client = logged_in(client, portal_admin)
    full = page_text(client.get(reverse("logs")))
    assert "alpha/web" in full and "zed" in full
    filtered = page_text(client.get(reverse("logs"), {"q": "zed"}, HTTP_HX_REQUEST="true"))
    assert "zed" in filtered and "alpha/web" not in filtered
    assert filtered.lstrip().startswith('<div id="log-table"')


def test_logs_paginate(client, portal_admin):
    for number in range(25):
        record(Actor(portal_admin), "create", "user", f"user{number:02d}")
    client = logged_in(client, portal_admin)
    first = page_text(client.get(reverse("logs")))
    older = re.search(r'href="([^"]+)"[^>]*rel="next"', first)
    assert "user00" not in first and older
    text = page_text(client.get(older.group(1).replace("&amp;", "&")))
    assert "Newer" in text and 'rel="next"' not in text
    assert "user00" in text  # newest first, so the oldest events are on the last page


# Profile.


def test_change_password(client, make_user):
    alice = make_user("alice")
    new = "Another-Passw0rd-42"
    data = {"old_password": PASSWORD, "new_password": new, "new_password_again": new}
    client = logged_in(client, alice)
    response = client.post(reverse("password-change"), data, follow=True)
    assert "Your password has been changed." in page_text(response)
    alice.refresh_from_db()
    assert alice.check_password(new)
    assert client.get(reverse("profile")).status_code == 200  # still logged in


def test_change_password_with_wrong_old_password(client, make_user):
    data = {"old_password": "wrong", "new_password": "Another-Passw0rd-42", "new_password_again": "Another-Passw0rd-42"}
    response = logged_in(client, make_user("alice")).post(reverse("password-change"), data)
    assert response.status_code == 400
    assert "The current password is wrong." in page_text(response)


def test_change_password_shows_validator_messages(client, make_user):
    data = {"old_password": PASSWORD, "new_password": "12345678", "new_password_again": "12345678"}
    response = logged_in(client, make_user("alice")).post(reverse("password-change"), data)
    assert response.status_code == 400
    assert "This password is entirely numeric." in page_text(response)


def test_create_token_shows_key_once(client, make_user):
    alice = make_user("alice")
    client = logged_in(client, alice)
    text = page_text(client.post(reverse("token-create"), {"name": "ci"}))
    key = text.split('id="new-token-key">')[1].split("<")[0]
    assert user_for_token(key) == alice
    later = page_text(client.get(reverse("profile")))
    assert key not in later
    assert 'data-token="ci"' in later


def test_duplicate_token_name_is_refused(client, make_user):
    alice = make_user("alice")
    create_token(Actor(alice), "ci")
    response = logged_in(client, alice).post(reverse("token-create"), {"name": "ci"})
    assert response.status_code == 409
    assert "you already have a token named &#x27;ci&#x27;" in page_text(response)


def test_past_expiry_is_refused(client, make_user):
    response = logged_in(client, make_user("alice")).post(
        reverse("token-create"), {"name": "old", "expires": "2000-01-01T00:00"}
    )
    assert response.status_code == 400
    assert "The expiry must be in the future." in page_text(response)


def test_revoke_token(client, make_user):
    alice = make_user("alice")
    token, _ = create_token(Actor(alice), "ci")
    response = logged_in(client, alice).post(reverse("token-revoke", args=[token.pk]), follow=True)
    assert "Token &#x27;ci&#x27; revoked." in page_text(response)
    assert not ApiToken.objects.exists()


def test_cannot_revoke_someone_elses_token(client, make_user):
    token, _ = create_token(Actor(make_user("alice")), "ci")
    response = logged_in(client, make_user("bob")).post(reverse("token-revoke", args=[token.pk]))
    assert response.status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


# Synchronize now, Reset Password (issue 17).


def test_synchronize_now_is_disabled_with_the_reason_without_a_directory(client, portal_admin, settings):
    settings.LDAP_URL = ""
    html = logged_in(client, portal_admin).get(reverse("configuration")).content.decode()
    assert re.search(r'<button type="button"[^>]* disabled aria-describedby="sync-reason">Synchronize now', html)
    assert reverse("directory-sync") not in html
    assert "Nothing to synchronize until a directory is configured" in html


def test_synchronize_now_is_offered_with_a_directory(client, portal_admin, settings):
    settings.LDAP_URL = "ldap://directory.example.test"
    html = logged_in(client, portal_admin).get(reverse("configuration")).content.decode()
    assert f'action="{reverse("directory-sync")}"' in html and "sync-reason" not in html


def reset(client, username: str, password: str = "", again: str | None = None, **headers):
    data = {"selected": f"user:{username}"}
    if password:
        data |= {"password": password, "password_again": password if again is None else again}
    return client.post(reverse("user-password-reset"), data, HTTP_HX_REQUEST="true", **headers)


def test_admin_resets_a_local_users_password_with_audit(client, portal_admin, make_user):
    carol = make_user("carol")
    logged_in(client, portal_admin)
    dialog = client.get(reverse("user-password-reset"), {"selected": "user:carol"}, HTTP_HX_REQUEST="true")
    assert "Reset Password of carol" in page_text(dialog) and "Confirm new password" in page_text(dialog)
    response = reset(client, "carol", "Brand-new-Passw0rd!")
    assert response.status_code == 204
    carol.refresh_from_db()
    assert carol.check_password("Brand-new-Passw0rd!")
    event = AuditEvent.objects.filter(action="change_password").latest("id")
    assert (event.username, event.resource_name, event.outcome) == (portal_admin.username, "carol", "success")


def test_reset_password_runs_the_validators_and_the_confirmation(client, portal_admin, make_user):
    carol = make_user("carol")
    logged_in(client, portal_admin)
    weak = reset(client, "carol", "abc")
    assert weak.status_code == 400 and "too short" in page_text(weak)
    differ = reset(client, "carol", "Brand-new-Passw0rd!", "Other-Passw0rd!")
    assert differ.status_code == 400 and "The two passwords differ." in page_text(differ)
    carol.refresh_from_db()
    assert carol.check_password(PASSWORD)


def test_reset_password_of_a_directory_user_says_why_not(client, portal_admin):
    User.objects.create_user("dan", source="ldap")
    logged_in(client, portal_admin)
    dialog = client.get(reverse("user-password-reset"), {"selected": "user:dan"}, HTTP_HX_REQUEST="true")
    assert "comes from the LDAP directory" in page_text(dialog)
    assert 'name="password"' not in dialog.content.decode()
    assert reset(client, "dan", "Brand-new-Passw0rd!").status_code == 400


def test_reset_password_is_for_portal_admins_only(client, role_users, make_user):
    make_user("carol")
    logged_in(client, role_users["project_admin"])
    assert reset(client, "carol", "Brand-new-Passw0rd!").status_code == 403


def test_reset_password_without_one_user_selected_says_so(client, portal_admin):
    response = logged_in(client, portal_admin).get(reverse("user-password-reset"), follow=True)
    assert "Select exactly one user to reset the password of." in page_text(response)


# Empty states (issue 17): a sentence and, where the user may act, the next step.


def test_empty_credentials_offer_to_add_one(client, portal_admin):
    html = logged_in(client, portal_admin).get(reverse("credentials")).content.decode()
    assert "data-empty-state" in html
    assert re.search(rf'href="{reverse("credential-create")}"[^>]*data-empty-action>Add a credential<', html)
