"""One project selection per user: kept across logins, starting on the project of the user's highest role, not
taken over by a project created later, and the one the Library's search uses."""

from __future__ import annotations

import re

from django.test import Client

from portal.core.audit import Actor
from projects import services
from projects.models import Membership, Project, ProjectSelection, Role
from projects.roles import role_label
from projects.selection import SESSION_KEY
from tests.conftest import logged_in, page_text


def header_project(client: Client, url: str = "/containers/") -> str:
    """The project the header's selector shows as selected."""
    match = re.search(r'<option value="([^"]+)" selected>', page_text(client.get(url)))
    assert match is not None, "no project is selected in the header"
    return match.group(1)


def test_a_pick_survives_logging_out_and_in(client, portal_admin, alpha, beta) -> None:
    logged_in(client, portal_admin).post("/select-project/", {"project": "beta", "next": "/containers/"})
    assert ProjectSelection.objects.get(user=portal_admin).project == beta
    client.post("/logout/")
    assert header_project(logged_in(Client(), portal_admin)) == "beta"


def test_each_user_keeps_their_own_pick(client, portal_admin, make_user, alpha, beta) -> None:
    other = make_user("other-admin", is_portal_admin=True)
    logged_in(client, portal_admin).post("/select-project/", {"project": "beta", "next": "/containers/"})
    assert header_project(logged_in(Client(), other)) == "alpha"


def test_a_user_starts_on_the_project_of_their_highest_role(client, make_user) -> None:
    Project.objects.create(name="aardvark", public=True)
    viewer_of = Project.objects.create(name="bravo")
    developer_of = Project.objects.create(name="zulu")
    user = make_user("dev-dana")
    Membership.objects.create(project=viewer_of, user=user, role=Role.VIEWER)
    Membership.objects.create(project=developer_of, user=user, role=Role.DEVELOPER)
    assert header_project(logged_in(client, user)) == "zulu"


def test_creating_a_project_does_not_switch_the_header(client, portal_admin, beta) -> None:
    client = logged_in(client, portal_admin)
    assert header_project(client) == "beta"
    services.create_project(Actor(portal_admin), "aaa-first")
    assert header_project(client) == "beta" and client.session[SESSION_KEY] == "beta"
    assert not ProjectSelection.objects.exists(), "a start nobody picked is kept in the session only"


def test_deleting_the_picked_project_drops_the_pick(client, portal_admin, alpha, beta) -> None:
    logged_in(client, portal_admin).post("/select-project/", {"project": "beta", "next": "/containers/"})
    services.delete_project(Actor(portal_admin), beta)
    assert not ProjectSelection.objects.exists()
    assert header_project(logged_in(Client(), portal_admin)) == "alpha"


def test_a_kept_pick_the_user_lost_access_to_is_not_shown(client, make_user, alpha, beta) -> None:
    user = make_user("moving-mo")
    Membership.objects.create(project=alpha, user=user, role=Role.VIEWER)
    member = Membership.objects.create(project=beta, user=user, role=Role.VIEWER)
    logged_in(client, user).post("/select-project/", {"project": "beta", "next": "/containers/"})
    member.delete()
    assert header_project(logged_in(Client(), user)) == "alpha"


def test_the_library_search_uses_the_header_project(client, portal_admin, alpha, beta) -> None:
    client = logged_in(client, portal_admin)
    client.post("/select-project/", {"project": "beta", "next": "/library/search/"})
    text = page_text(client.get("/library/search/"))
    assert "Searches for project <strong>beta</strong>" in text and 'id="search-project"' not in text
    # A link naming a project picks it in the header too, so the two never disagree.
    text = page_text(client.get("/library/search/", {"project": "alpha"}))
    assert "Searches for project <strong>alpha</strong>" in text and header_project(client) == "alpha"


def test_the_library_search_ignores_a_project_the_user_may_not_see(client, make_user, alpha, beta) -> None:
    user = make_user("viewer-vi")
    Membership.objects.create(project=alpha, user=user, role=Role.VIEWER)
    text = page_text(logged_in(client, user).get("/library/search/", {"project": "beta"}))
    assert "<strong>alpha</strong>" in text and '<option value="beta"' not in text and "<strong>beta" not in text


def test_role_labels_come_from_one_place() -> None:
    assert role_label("admin", portal_admin=False) == "DevOps administrator"
    assert role_label(Role.DEVELOPER, portal_admin=True) == "Developer"
    assert role_label(None, portal_admin=True) == "Management Portal administrator"
    assert role_label(None, portal_admin=False) == "Guest (public project)"


def test_home_and_projects_name_the_admin_role_alike(client, portal_admin, alpha) -> None:
    client = logged_in(client, portal_admin)
    for url in ("/", "/projects/", "/projects/alpha/"):
        assert "Management Portal administrator" in page_text(client.get(url)), url


def test_identity_list_names_project_roles_by_their_display_name(client, portal_admin, make_user, alpha) -> None:
    Membership.objects.create(project=alpha, user=make_user("ops-olga"), role=Role.ADMIN)
    text = page_text(logged_in(client, portal_admin).get("/identities/"))
    assert "alpha: DevOps administrator" in text and "alpha: admin<" not in text
