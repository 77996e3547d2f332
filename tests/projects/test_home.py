"""Home's My projects at a site's size: a page at a time, with the user's role in each, in the same number of
queries however many projects exist."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.core.models import User
from projects.models import Membership, Project, Role
from projects.views import HOME_PAGE_SIZE
from tests.conftest import logged_in, page_text


def make_projects(count: int, start: int = 0) -> None:
    """Private projects named proj-000, proj-001, ..."""
    Project.objects.bulk_create([Project(name=f"proj-{i:03d}") for i in range(start, start + count)])


def my_projects(text: str) -> list[tuple[str, str]]:
    """The (project, my role) rows of the My projects table."""
    table = re.search(r'<table [^>]*aria-label="My projects">.*?</table>', text, re.S)
    assert table is not None
    row = r'<a href="/projects/[^"]+/">([^<]+)</a></td>.*?<td class="left">.*?</td>\s*<td class="left">([^<]*)</td>'
    return re.findall(row, table.group(0), re.S)


@pytest.fixture
def sixty(db) -> None:
    """60 private projects."""
    make_projects(60)


def test_home_shows_one_page_of_projects_and_a_way_to_the_next(client, portal_admin, sixty) -> None:
    text = page_text(logged_in(client, portal_admin).get("/"))
    rows = my_projects(text)
    assert len(rows) == HOME_PAGE_SIZE == 25
    assert rows[0] == ("proj-000", "Management Portal administrator") and rows[-1][0] == "proj-024"
    assert "1 - 25 of 60" in text and "Page 1 of 3" in text and 'href="?page=2"' in text


def test_the_last_page_shows_the_rest(client, portal_admin, sixty) -> None:
    text = page_text(logged_in(client, portal_admin).get("/", {"page": 3}))
    assert [name for name, _ in my_projects(text)] == [f"proj-{i:03d}" for i in range(50, 60)]
    assert "51 - 60 of 60" in text


def test_pagination_reloads_only_the_table_for_htmx(client, portal_admin, sixty) -> None:
    text = page_text(logged_in(client, portal_admin).get("/", {"page": 2}, HTTP_HX_REQUEST="true"))
    assert text.strip().startswith('<div id="home-projects"') and "<h2>Home</h2>" not in text
    assert my_projects(text)[0][0] == "proj-025"


BAD_PAGES = [("abc", "proj-000"), ("", "proj-000"), ("1e9", "proj-000"), ("0", "proj-050"), ("-1", "proj-050")]


@pytest.mark.parametrize(("page", "first"), [*BAD_PAGES, ("999", "proj-050"), ("\x00", "proj-000")])
def test_a_bad_page_number_shows_a_page_not_an_error(client, portal_admin, sixty, page, first) -> None:
    response = logged_in(client, portal_admin).get("/", {"page": page})
    assert response.status_code == 200 and my_projects(page_text(response))[0][0] == first


def test_a_member_sees_their_role_and_only_projects_they_may_see(client, make_user, sixty) -> None:
    member = make_user("member")
    Membership.objects.create(project=Project.objects.get(name="proj-007"), user=member, role=Role.DEVELOPER)
    Project.objects.create(name="public-docs", public=True)
    text = page_text(logged_in(client, member).get("/"))
    assert my_projects(text) == [("proj-007", "Developer"), ("public-docs", "Guest (public project)")]
    assert "2 items" in text and "Page 1" not in text


def queries_for(client: Client, url: str) -> int:
    """How many SQL queries one warm request for the page makes."""
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/", "/?page=2"])
@pytest.mark.parametrize("admin", [True, False], ids=["portal_admin", "member"])
def test_home_queries_do_not_grow_with_the_projects(client, make_user, url, admin) -> None:
    user: User = make_user("someone", is_portal_admin=admin)
    make_projects(5)
    Membership.objects.create(project=Project.objects.get(name="proj-001"), user=user, role=Role.VIEWER)
    client = logged_in(client, user)
    few = queries_for(client, url)
    make_projects(55, start=5)
    for name in ("proj-030", "proj-040", "proj-050"):
        Membership.objects.create(project=Project.objects.get(name=name), user=user, role=Role.ADMIN)
    Project.objects.filter(name__in=["proj-010", "proj-020"]).update(public=True)
    assert queries_for(client, url) == few
