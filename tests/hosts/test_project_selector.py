"""The header's project selector at a site's size: one page of choices on every page, search as you type for the
rest (only projects the user may view), and the same number of queries however many projects exist."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.core.models import User
from projects.models import Membership, Project, ProjectSelection, Role
from projects.selection import SELECTOR_SIZE, SESSION_KEY
from tests.conftest import logged_in, page_text


def make_projects(count: int, start: int = 0, **fields: object) -> list[Project]:
    """Projects named proj-000, proj-001, ... (private unless told)."""
    return Project.objects.bulk_create([Project(name=f"proj-{i:03d}", **fields) for i in range(start, start + count)])


def choices(text: str) -> list[str]:
    """The project names the header's drop-down offers, in order (the selected one marked with *)."""
    select = re.search(r'<select id="project-selector".*?</select>', text, re.S)
    assert select is not None, "the page has no project selector"
    return [
        name + ("*" if selected else "")
        for name, selected in re.findall(r'<option value="([^"]+)"( selected)?>', select.group(0))
    ]


def search(client: Client, q: str, **headers: str) -> str:
    """The selector's search answer to the typed text, as htmx asks for it."""
    response = client.get("/select-project/search/", {"q": q}, HTTP_HX_REQUEST="true", **headers)
    assert response.status_code == 200
    return page_text(response)


@pytest.fixture
def member(make_user) -> User:
    """A user who is a member of three of many projects."""
    return make_user("member")


@pytest.fixture
def many(member: User) -> list[Project]:
    """60 private projects, 6 public ones; the member is viewer of proj-040 and DevOps administrator of proj-050."""
    projects = make_projects(60) + make_projects(6, start=100, public=True)
    Membership.objects.create(project=Project.objects.get(name="proj-040"), user=member, role=Role.VIEWER)
    Membership.objects.create(project=Project.objects.get(name="proj-050"), user=member, role=Role.ADMIN)
    return projects


def test_every_page_offers_at_most_one_page_of_projects(client, portal_admin, many) -> None:
    text = page_text(logged_in(client, portal_admin).get("/containers/"))
    offered = choices(text)
    assert len(offered) == SELECTOR_SIZE
    assert offered[0] == "proj-000*" and offered[1:3] == ["proj-001", "proj-002"]
    assert "More projects: type to search" in text
    assert 'id="project-search"' in text and 'placeholder="Type to search"' in text


def test_a_member_sees_their_projects_by_role_before_public_ones(client, member, many) -> None:
    offered = choices(page_text(logged_in(client, member).get("/hosts/")))
    # DevOps administrator before viewer, then the public projects by name; no other private project.
    assert offered == ["proj-050*", "proj-040", "proj-100", "proj-101", "proj-102", "proj-103", "proj-104", "proj-105"]


def test_no_hint_when_every_project_fits(client, member, many) -> None:
    assert "More projects" not in page_text(logged_in(client, member).get("/hosts/"))


def test_the_selected_project_comes_first_even_beyond_the_first_page(client, portal_admin, many) -> None:
    client = logged_in(client, portal_admin)
    client.post("/select-project/", {"project": "proj-042", "next": "/hosts/"})
    assert client.session[SESSION_KEY] == "proj-042"
    offered = choices(page_text(client.get("/hosts/")))
    assert offered[:3] == ["proj-042*", "proj-000", "proj-001"] and len(offered) == SELECTOR_SIZE


def test_search_offers_the_matching_projects_to_pick_from(client, portal_admin, many) -> None:
    text = search(logged_in(client, portal_admin), "oj-04")
    assert text.strip().startswith('<select id="project-selector"')
    assert '<option value="" selected disabled>Projects matching “oj-04”</option>' in text
    assert choices(text) == [f"proj-04{i}" for i in range(10)]
    assert "More projects match" not in text


def test_search_says_when_more_match_than_it_shows(client, portal_admin, many) -> None:
    text = search(logged_in(client, portal_admin), "PROJ")
    assert len(choices(text)) == SELECTOR_SIZE and "More projects match: type more" in text


def test_search_never_names_a_private_project_the_user_may_not_view(client, member, many) -> None:
    Project.objects.create(name="secret-merger")
    client = logged_in(client, member)
    text = search(client, "secret")
    assert "secret-merger" not in text and "No project matches “secret”" in text
    assert choices(search(client, "proj-0")) == ["proj-050", "proj-040"]  # the member's own, not the other 58
    page = page_text(client.get("/select-project/search/", {"q": "merger"}))
    assert "secret-merger" not in page and "No project matches “merger”." in page


def test_selecting_a_private_project_through_a_guessed_name_changes_nothing(client, member, many) -> None:
    client = logged_in(client, member)
    client.post("/select-project/", {"project": "proj-001", "next": "/hosts/"})
    assert client.session.get(SESSION_KEY) != "proj-001" and not ProjectSelection.objects.exists()
    assert choices(page_text(client.get("/hosts/")))[0] == "proj-050*"


@pytest.mark.parametrize("q", ["<script>alert(1)</script>", '"><img src=x>', "a&b"])
def test_search_text_is_shown_escaped(client, portal_admin, many, q) -> None:
    text = search(logged_in(client, portal_admin), q)
    assert "<script>" not in text and "<img" not in text
    assert "No project matches" in text


@pytest.mark.parametrize("q", ["%", "_", "\\", "x" * 5000, "ü∂ƒ", "proj-001\x00x"])
def test_odd_search_text_matches_nothing_and_is_no_server_error(client, portal_admin, many, q) -> None:
    client = logged_in(client, portal_admin)
    assert choices(search(client, q)) == [], "wildcards are matched literally; nothing else matches"
    assert client.get("/select-project/search/", {"q": q}).status_code == 200
    assert client.post("/select-project/", {"project": q, "next": "/hosts/"}).status_code == 302
    assert client.session.get(SESSION_KEY) == "proj-000" and not ProjectSelection.objects.exists()


def test_a_nul_in_the_search_text_is_dropped(client, portal_admin, many) -> None:
    client = logged_in(client, portal_admin)
    assert choices(search(client, "proj-00\x001")) == ["proj-001"]
    assert choices(search(client, "\x00"))[0] == "proj-000*"  # nothing left to search for: the first page


def test_an_empty_search_offers_the_first_page_again(client, portal_admin, many) -> None:
    client = logged_in(client, portal_admin)
    client.post("/select-project/", {"project": "proj-042"})
    for q in ("", "  "):
        text = search(client, q)
        assert choices(text)[0] == "proj-042*" and "More projects: type to search" in text
    assert choices(page_text(client.get("/select-project/search/", HTTP_HX_REQUEST="true")))[0] == "proj-042*"


def test_search_without_javascript_is_a_page_of_select_buttons(client, portal_admin, many) -> None:
    client = logged_in(client, portal_admin)
    response = client.get("/select-project/search/", {"q": "proj-05", "next": "/containers/"})
    text = page_text(response)
    assert response.status_code == 200 and "<h2>Select a project</h2>" in text
    assert '<button type="submit" name="project" value="proj-057"' in text
    assert '<input type="hidden" name="next" value="/containers/">' in text
    chosen = client.post("/select-project/", {"project": "proj-057", "next": "/containers/"})
    assert chosen["Location"] == "/containers/" and client.session[SESSION_KEY] == "proj-057"


def test_search_keeps_no_foreign_next_address(client, portal_admin, many) -> None:
    text = page_text(logged_in(client, portal_admin).get("/select-project/search/", {"next": "https://evil.example/"}))
    matches = re.search(
        r'<form method="post" action="/select-project/" aria-label="Matching projects">.*?</form>', text, re.S
    )
    assert matches is not None and "evil.example" not in matches.group(0)


def test_search_needs_a_login(client, many) -> None:
    response = client.get("/select-project/search/", {"q": "proj"})
    assert response.status_code == 302 and "/login" in response["Location"]
    assert client.post("/select-project/search/", {"q": "proj"}).status_code == 405


def queries_for(client: Client, url: str) -> int:
    """How many SQL queries one warm request for the page makes."""
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/hosts/", "/containers/", "/select-project/search/?q=proj"])
@pytest.mark.parametrize("who", ["portal_admin", "member"])
def test_selector_queries_do_not_grow_with_the_projects(client, portal_admin, member, url, who) -> None:
    user = portal_admin if who == "portal_admin" else member
    make_projects(5)
    Membership.objects.create(project=Project.objects.get(name="proj-003"), user=member, role=Role.DEVELOPER)
    client = logged_in(client, user)
    few = queries_for(client, url)
    make_projects(55, start=5)
    Membership.objects.create(project=Project.objects.get(name="proj-033"), user=member, role=Role.ADMIN)
    assert queries_for(client, url) == few
