"""The project pages as each role sees them: list, +Project, Delete, tabs, members, configuration, logs."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.core.audit import Actor, record
from portal.core.models import Group, User
from projects import services
from projects.models import Membership, Project, Role, Severity
from tests.conftest import logged_in, page_text

pytestmark = pytest.mark.django_db


# Administration > Projects.


def test_project_list_shows_only_visible_projects_with_role(client, role_users, alpha, beta):
    response = logged_in(client, role_users["viewer"]).get(reverse("project-list"))
    assert response.status_code == 200
    assert 'data-project="alpha"' in page_text(response)
    assert 'data-project="beta"' not in page_text(response)
    assert "Viewer" in page_text(response)


def test_viewer_does_not_see_create_or_delete(client, role_users):
    text = page_text(logged_in(client, role_users["viewer"]).get(reverse("project-list")))
    assert "+ Project" not in text
    assert "Delete" not in text


def test_admin_sees_create_and_delete(client, role_users):
    text = page_text(logged_in(client, role_users["portal_admin"]).get(reverse("project-list")))
    assert "+ Project" in text
    assert reverse("project-delete", args=["alpha"]) in text


def test_search_box_filters_projects(client, role_users):
    response = logged_in(client, role_users["portal_admin"]).get(reverse("project-list"), {"q": "bet"})
    assert 'data-project="beta"' in page_text(response)
    assert 'data-project="alpha"' not in page_text(response)


def test_htmx_filter_returns_only_the_table(client, role_users):
    response = logged_in(client, role_users["portal_admin"]).get(
        reverse("project-list"), {"q": "alp"}, HTTP_HX_REQUEST="true"
    )
    text = page_text(response)
    assert text.lstrip().startswith('<div id="project-table"')
    assert "<html" not in text
    assert 'data-project="alpha"' in text


def test_project_list_paginates(client, portal_admin):
    for number in range(25):
        Project.objects.create(name=f"p{number:02d}")
    client = logged_in(client, portal_admin)
    first = page_text(client.get(reverse("project-list")))
    second = page_text(client.get(reverse("project-list"), {"page": 2}))
    assert 'data-project="p00"' in first and 'data-project="p24"' not in first
    assert 'data-project="p24"' in second
    assert "Page 2 of 2" in second


def test_create_dialog_renders_for_admin(client, portal_admin):
    response = logged_in(client, portal_admin).get(reverse("project-create"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "New Project" in page_text(response)
    assert "<html" not in page_text(response)


def test_admin_creates_project(client, portal_admin):
    response = logged_in(client, portal_admin).post(reverse("project-create"), {"name": "web", "public": "on"})
    assert response.status_code == 302
    assert response.url == reverse("project-detail", args=["web"])
    assert Project.objects.get(name="web").public
    assert "Project &#x27;web&#x27; created." in page_text(client.get(response.url))


def test_htmx_create_redirects_on_the_client(client, portal_admin):
    response = logged_in(client, portal_admin).post(reverse("project-create"), {"name": "web"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("project-detail", args=["web"])


def test_bad_project_name_shows_the_rule(client, portal_admin):
    response = logged_in(client, portal_admin).post(reverse("project-create"), {"name": "Bad Name"})
    assert response.status_code == 400
    assert "lowercase letters and digits" in page_text(response)
    assert not Project.objects.filter(name="Bad Name").exists()


def test_duplicate_project_name_is_refused(client, portal_admin, alpha):
    response = logged_in(client, portal_admin).post(
        reverse("project-create"), {"name": "alpha"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    assert "project &#x27;alpha&#x27; already exists" in page_text(response)


def test_non_admin_cannot_create_project(client, role_users):
    client = logged_in(client, role_users["project_admin"])
    assert client.get(reverse("project-create")).status_code == 403
    assert client.post(reverse("project-create"), {"name": "web"}).status_code == 403
    assert not Project.objects.filter(name="web").exists()


def test_admin_deletes_project(client, portal_admin, alpha):
    response = logged_in(client, portal_admin).post(reverse("project-delete", args=["alpha"]), follow=True)
    assert "Project &#x27;alpha&#x27; deleted." in page_text(response)
    assert not Project.objects.filter(name="alpha").exists()


def test_delete_refusal_is_shown(client, portal_admin, alpha, monkeypatch):
    monkeypatch.setattr(services, "PROJECT_CONTENT_CHECKS", [lambda project: "3 repositories"])
    response = logged_in(client, portal_admin).post(reverse("project-delete", args=["alpha"]), follow=True)
    assert "project &#x27;alpha&#x27; still holds 3 repositories" in page_text(response)
    assert Project.objects.filter(name="alpha").exists()


def test_project_admin_gets_403_when_deleting(client, role_users, alpha):
    response = logged_in(client, role_users["project_admin"]).post(reverse("project-delete", args=["alpha"]))
    assert response.status_code == 403
    assert Project.objects.filter(name="alpha").exists()


def test_outsider_gets_404_when_deleting(client, role_users, alpha):
    response = logged_in(client, role_users["other_project_admin"]).post(reverse("project-delete", args=["alpha"]))
    assert response.status_code == 404


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("project-list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# One project's tabs.


@pytest.mark.parametrize("url_name", ["project-detail", "project-members", "project-configuration", "project-logs"])
def test_invisible_project_is_404(client, role_users, url_name):
    response = logged_in(client, role_users["other_project_admin"]).get(reverse(url_name, args=["alpha"]))
    assert response.status_code == 404


@pytest.mark.parametrize("url_name", ["project-detail", "project-members", "project-configuration", "project-logs"])
def test_viewer_opens_every_tab(client, role_users, url_name):
    response = logged_in(client, role_users["viewer"]).get(reverse(url_name, args=["alpha"]))
    assert response.status_code == 200
    assert 'aria-current="page"' in page_text(response)


def test_public_project_is_visible_to_anyone_logged_in(client, make_user):
    Project.objects.create(name="open", public=True)
    response = logged_in(client, make_user("stranger")).get(reverse("project-detail", args=["open"]))
    assert response.status_code == 200
    assert "<dt>Your role</dt><dd>Guest (public project)</dd>" in page_text(response)  # as Home and Projects say
    assert "Public" in page_text(response)


def test_summary_shows_role_and_settings(client, role_users):
    text = page_text(logged_in(client, role_users["developer"]).get(reverse("project-detail", args=["alpha"])))
    assert "Developer" in text
    assert "Members</dt><dd>3" in text


# Members.


def test_members_tab_lists_users_and_groups(client, role_users, alpha, group):
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    text = page_text(logged_in(client, role_users["viewer"]).get(reverse("project-members", args=["alpha"])))
    assert 'data-member="alpha-viewer"' in text
    assert 'data-member="devs"' in text
    assert "DevOps administrator" in text


def test_viewer_does_not_see_member_controls(client, role_users):
    text = page_text(logged_in(client, role_users["viewer"]).get(reverse("project-members", args=["alpha"])))
    assert "+ Add" not in text
    assert 'name="member"' not in text


def test_project_admin_sees_member_controls(client, role_users):
    text = page_text(logged_in(client, role_users["project_admin"]).get(reverse("project-members", args=["alpha"])))
    assert "+ Add" in text
    assert 'name="member"' in text


def _add_members(project: Project, count: int) -> None:
    """Many viewers named member-000, member-001, ... in the project."""
    users = User.objects.bulk_create(User(username=f"member-{i:03}") for i in range(count))
    Membership.objects.bulk_create(Membership(project=project, user=user, role=Role.VIEWER) for user in users)


def test_members_tab_shows_one_page_at_a_time(client, role_users, alpha, group):
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    _add_members(alpha, 40)
    client = logged_in(client, role_users["project_admin"])
    first = page_text(client.get(reverse("project-members", args=["alpha"])))
    assert "Page 1 of 2" in first
    assert "1 - 25 of 44" in first
    assert first.count("<tr data-member=") == 25
    assert 'data-member="devs"' in first  # groups come first
    second = page_text(client.get(reverse("project-members", args=["alpha"]), {"page": 2}))
    assert "Page 2 of 2" in second
    assert second.count("<tr data-member=") == 19
    assert 'data-member="member-039"' in second
    assert 'data-member="member-039"' not in first


@pytest.mark.parametrize("page", ["0", "-1", "abc", "999", "1.5"])
def test_members_tab_bad_page_number_is_not_an_error(client, role_users, page):
    response = logged_in(client, role_users["viewer"]).get(reverse("project-members", args=["alpha"]), {"page": page})
    assert response.status_code == 200
    assert 'data-member="alpha-viewer"' in page_text(response)


def test_members_tab_search_narrows_the_rows(client, role_users, alpha, group):
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    _add_members(alpha, 30)
    client = logged_in(client, role_users["viewer"])
    text = page_text(client.get(reverse("project-members", args=["alpha"]), {"q": "member-02"}))
    assert text.count("<tr data-member=") == 10
    assert 'data-member="devs"' not in text
    region = client.get(reverse("project-members", args=["alpha"]), {"q": "dev"}, HTTP_HX_REQUEST="true")
    assert 'data-member="devs"' in page_text(region)
    assert "<html" not in page_text(region)
    assert "No members match 'nobody'" in page_text(
        client.get(reverse("project-members", args=["alpha"]), {"q": "nobody"})
    )


def test_member_edit_works_for_a_member_on_page_two(client, role_users, alpha):
    _add_members(alpha, 40)
    membership = Membership.objects.get(project=alpha, user__username="member-039")
    client = logged_in(client, role_users["project_admin"])
    second = page_text(client.get(reverse("project-members", args=["alpha"]), {"page": 2}))
    assert f'name="member" value="{membership.pk}" form="member-form"' in second
    client.post(reverse("member-edit", args=["alpha"]), {"member": membership.pk, "role": Role.DEVELOPER.value})
    membership.refresh_from_db()
    assert membership.role == Role.DEVELOPER


def test_member_search_finds_users_and_groups(client, role_users, make_user, group):
    make_user("carol", first_name="Carol", last_name="Jones")
    client = logged_in(client, role_users["project_admin"])
    text = page_text(client.get(reverse("member-search", args=["alpha"]), {"q": "carol"}))
    assert 'value="user:carol"' in text
    assert "Carol Jones" in text
    assert 'value="group:devs"' in page_text(client.get(reverse("member-search", args=["alpha"]), {"q": "dev"}))


def test_viewer_cannot_search_or_open_add_dialog(client, role_users):
    client = logged_in(client, role_users["viewer"])
    assert client.get(reverse("member-search", args=["alpha"]), {"q": "a"}).status_code == 403
    assert client.get(reverse("member-add", args=["alpha"])).status_code == 403


def test_project_admin_adds_user_member(client, role_users, alpha, make_user):
    carol = make_user("carol")
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "user:carol", "role": "developer"}, follow=True
    )
    assert "Added user &#x27;carol&#x27; to project &#x27;alpha&#x27;." in page_text(response)
    assert Membership.objects.get(project=alpha, user=carol).role == Role.DEVELOPER


def test_project_admin_adds_group_member(client, role_users, alpha, group):
    logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "group:devs", "role": "viewer"}
    )
    assert Membership.objects.get(project=alpha, group=group).role == Role.VIEWER


def test_adding_existing_member_shows_conflict(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "user:alpha-viewer", "role": "developer"}
    )
    assert response.status_code == 409
    assert "already a member of project" in page_text(response)


def test_a_refused_add_keeps_the_search_text_and_the_pick(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]),
        {"q": "alpha-viewer", "identity": "user:alpha-viewer", "role": "developer"},
        HTTP_HX_REQUEST="true",
    )
    text = page_text(response)
    assert response.status_code == 409 and 'value="alpha-viewer" placeholder="Search users and groups"' in text
    assert re.search(r'value="user:alpha-viewer" id="identity-\d+" class="clr-radio" checked>', text)
    assert ">user:alpha-viewer<" not in text


def test_a_refused_add_without_search_keeps_the_pick_by_name(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "user:alpha-viewer", "role": "developer"}
    )
    assert 'id="identity-kept" class="clr-radio" checked>' in page_text(response)
    assert "alpha-viewer · user</label>" in page_text(response)


def test_adding_unknown_user_shows_message(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "user:nobody", "role": "developer"}
    )
    assert response.status_code == 404
    assert "no user named &#x27;nobody&#x27;" in page_text(response)


def test_adding_without_choosing_asks_for_a_choice(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-add", args=["alpha"]), {"role": "developer"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Choose a user or group from the search results." in page_text(response)


def test_viewer_posting_add_gets_403(client, role_users, alpha, make_user):
    make_user("carol")
    response = logged_in(client, role_users["viewer"]).post(
        reverse("member-add", args=["alpha"]), {"identity": "user:carol", "role": "admin"}
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="carol").exists()


def test_edit_dialog_changes_role(client, role_users, alpha):
    membership = Membership.objects.get(project=alpha, user=role_users["viewer"])
    client = logged_in(client, role_users["project_admin"])
    dialog = client.get(reverse("member-edit", args=["alpha"]), {"member": membership.pk}, HTTP_HX_REQUEST="true")
    assert "Edit Member alpha-viewer" in page_text(dialog)
    response = client.post(reverse("member-edit", args=["alpha"]), {"member": membership.pk, "role": "developer"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.DEVELOPER


def test_edit_without_selection_says_so(client, role_users):
    response = logged_in(client, role_users["project_admin"]).get(reverse("member-edit", args=["alpha"]), follow=True)
    assert "Select a member first." in page_text(response)


def test_remove_member(client, role_users, alpha):
    membership = Membership.objects.get(project=alpha, user=role_users["viewer"])
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-remove", args=["alpha"]), {"member": membership.pk}, follow=True
    )
    assert "Removed alpha-viewer from project &#x27;alpha&#x27;." in page_text(response)
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_developer_posting_remove_gets_403(client, role_users, alpha):
    membership = Membership.objects.get(project=alpha, user=role_users["viewer"])
    response = logged_in(client, role_users["developer"]).post(
        reverse("member-remove", args=["alpha"]), {"member": membership.pk}
    )
    assert response.status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_member_of_another_project_cannot_be_removed_here(client, role_users, beta):
    other = Membership.objects.get(project=beta)
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("member-remove", args=["alpha"]), {"member": other.pk}, follow=True
    )
    assert "Select at least one member to remove." in page_text(response)
    assert Membership.objects.filter(pk=other.pk).exists()


# Configuration.


def test_project_admin_saves_configuration(client, role_users, alpha):
    data = {"content_trust": "on", "prevent_vulnerable": "on", "severity": "critical", "auto_scan": "on"}
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("project-configuration", args=["alpha"]), data, follow=True
    )
    assert "Configuration of project &#x27;alpha&#x27; saved." in page_text(response)
    alpha.refresh_from_db()
    assert alpha.content_trust and alpha.prevent_vulnerable and alpha.auto_scan
    assert alpha.severity == Severity.CRITICAL
    assert not alpha.public


def test_viewer_sees_configuration_read_only(client, role_users):
    text = page_text(logged_in(client, role_users["viewer"]).get(reverse("project-configuration", args=["alpha"])))
    assert "<fieldset disabled>" in text
    assert ">Save</button>" not in text


def test_developer_posting_configuration_gets_403(client, role_users, alpha):
    response = logged_in(client, role_users["developer"]).post(
        reverse("project-configuration", args=["alpha"]), {"public": "on", "severity": "low"}
    )
    assert response.status_code == 403
    alpha.refresh_from_db()
    assert not alpha.public


def test_bad_severity_is_a_form_error(client, role_users):
    response = logged_in(client, role_users["project_admin"]).post(
        reverse("project-configuration", args=["alpha"]), {"severity": "extreme"}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in page_text(response)


# Logs.


def test_logs_tab_shows_only_this_projects_events(client, role_users, alpha, beta):
    actor = Actor(role_users["portal_admin"])
    record(actor, "push", "repository", "alpha/web", alpha)
    record(actor, "push", "repository", "beta/api", beta)
    text = page_text(logged_in(client, role_users["viewer"]).get(reverse("project-logs", args=["alpha"])))
    assert "alpha/web" in text
    assert "beta/api" not in text


def test_logs_tab_filter(client, role_users, alpha):
    actor = Actor(role_users["portal_admin"])
    record(actor, "push", "repository", "alpha/web", alpha)
    record(actor, "delete", "tag", "alpha/api:1", alpha)
    response = logged_in(client, role_users["viewer"]).get(
        reverse("project-logs", args=["alpha"]), {"q": "delete"}, HTTP_HX_REQUEST="true"
    )
    text = page_text(response)
    assert "alpha/api:1" in text
    assert "alpha/web" not in text
    assert "<html" not in text


def test_created_project_shows_its_creation_in_logs(client, portal_admin):
    client = logged_in(client, portal_admin)
    client.post(reverse("project-create"), {"name": "web"})
    assert "create" in page_text(client.get(reverse("project-logs", args=["web"])))


def test_group_member_sees_project_on_home(client, make_user, alpha):
    user = make_user("gina")
    team = Group.objects.create(name="team")
    team.members.add(user)
    services.add_member(Actor(User.objects.create_user("boss", is_portal_admin=True)), alpha, "developer", group=team)
    text = page_text(logged_in(client, user).get(reverse("home")))
    assert "alpha" in text
    assert "Developer" in text
