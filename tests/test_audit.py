"""Every state change writes an audit event with user, action, resource, project, outcome and client address;
the audit log lists them by exact filters, free text and keyset pages, at any size."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.filters import AuditEventFilterSet
from portal.core.models import AUDIT_OPERATIONS, AUDIT_RESOURCE_TYPES, AuditEvent, Group, User
from portal.core.services import purge_audit_events
from projects.models import Membership, Project, Role
from tests.conftest import basic, client_for, logged_in, page_text

ADDRESS = "127.0.0.42"

# (method, path, body, expected (action, resource_type, resource_name, project_name))
CHANGES: list[tuple[str, str, Any, tuple[str, str, str, str]]] = [
    ("post", "/api/v1/projects", {"name": "gamma"}, ("create", "project", "gamma", "gamma")),
    ("patch", "/api/v1/projects/alpha", {"public": True}, ("update", "project", "alpha", "alpha")),
    ("delete", "/api/v1/projects/beta", None, ("delete", "project", "beta", "beta")),
    (
        "post",
        "/api/v1/projects/alpha/members",
        {"user": "wes", "role": "viewer"},
        ("add_member", "user", "wes", "alpha"),
    ),
    ("patch", "/api/v1/projects/alpha/members/{member}", {"role": "admin"}, ("change_role", "user", "xena", "alpha")),
    ("delete", "/api/v1/projects/alpha/members/{member}", None, ("remove_member", "user", "xena", "alpha")),
    ("post", "/api/v1/users", {"username": "yuri", "password": "Long-enough-42"}, ("create", "user", "yuri", "")),
    ("patch", "/api/v1/users/wes", {"is_active": False}, ("disable", "user", "wes", "")),
    ("delete", "/api/v1/users/wes", None, ("delete", "user", "wes", "")),
    ("put", "/api/v1/users/wes/admin", None, ("assign_admin", "user", "wes", "")),
    ("put", "/api/v1/users/wes/password", {"new_password": "Long-enough-42"}, ("change_password", "user", "wes", "")),
    ("put", "/api/v1/groups/crew/admin", None, ("assign_admin", "group", "crew", "")),
    ("post", "/api/v1/groups", {"name": "deck"}, ("create", "group", "deck", "")),
    (
        "put",
        "/api/v1/users/wes/projects",
        [{"project": "beta", "role": "developer"}],
        ("add_member", "user", "wes", "beta"),
    ),
    ("patch", "/api/v1/settings", {"token_expiration_minutes": 10}, ("update", "settings", "system", "")),
    ("post", "/api/v1/tokens", {"name": "ci"}, ("create", "api_token", "ci", "")),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), CHANGES, ids=[f"{c[0]} {c[1]}" for c in CHANGES])
def test_change_is_audited(alpha, beta, portal_admin, method: str, path: str, body: Any, expected: tuple) -> None:
    User.objects.create_user("wes")
    xena = User.objects.create_user("xena")
    Group.objects.create(name="crew")
    member = Membership.objects.create(project=alpha, user=xena, role=Role.VIEWER)
    AuditEvent.objects.all().delete()
    api = client_for(None)
    api.credentials(HTTP_AUTHORIZATION=basic(portal_admin.username), REMOTE_ADDR=ADDRESS)
    response = getattr(api, method)(path.format(member=member.pk), body, format="json")
    assert response.status_code < 300, response.content
    events = list(AuditEvent.objects.values_list("action", "resource_type", "resource_name", "project_name"))
    assert expected in events
    event = AuditEvent.objects.get(action=expected[0], resource_name=expected[2])
    assert (event.username, event.client_address, event.outcome) == (portal_admin.username, ADDRESS, "success")


def test_refused_change_writes_nothing(make_user, alpha) -> None:
    viewer = make_user("zed")
    Membership.objects.create(project=alpha, user=viewer, role=Role.VIEWER)
    before = AuditEvent.objects.count()
    assert client_for(viewer).patch("/api/v1/projects/alpha", {"public": True}, format="json").status_code == 403
    assert AuditEvent.objects.count() == before
    assert not Project.objects.get(name="alpha").public


def test_logs_filter_and_project_scope(api, alpha, beta, make_user) -> None:
    api.patch("/api/v1/projects/alpha", {"public": True}, format="json")
    api.patch("/api/v1/projects/beta", {"auto_scan": True}, format="json")
    filtered = api.get("/api/v1/audit-logs?q=beta").json()["results"]
    assert filtered and all("beta" in (e["resource_name"] + e["project_name"]) for e in filtered)
    viewer = make_user("watcher")
    Membership.objects.create(project=alpha, user=viewer, role=Role.VIEWER)
    own = client_for(viewer).get("/api/v1/audit-logs?project=alpha").json()["results"]
    assert own and {e["project_name"] for e in own} == {"alpha"}
    other = client_for(viewer).get("/api/v1/audit-logs?project=beta").json()["results"]
    assert other == []


def test_purge_drops_events_past_retention(db) -> None:
    old = AuditEvent.objects.create(action="x", resource_type="y", time=timezone.now() - timedelta(days=181))
    recent = AuditEvent.objects.create(action="x", resource_type="y", time=timezone.now() - timedelta(days=179))
    assert purge_audit_events(Actor.system()) == 1
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert AuditEvent.objects.filter(action="purge", username="system").exists()


# --- The list: filters, search, keyset pages ------------------------------------------------------------------

T0 = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)


def event(**fields: Any) -> AuditEvent:
    """An unsaved event: alice creates repository alpha/web at T0, unless told otherwise."""
    values = {"time": T0, "username": "alice", "action": "create", "resource_type": "repository",
              "resource_name": "alpha/web", "project_name": "alpha", "outcome": "success",
              "client_address": "10.0.0.1"}  # fmt: skip
    return AuditEvent(**{**values, **fields})


@pytest.fixture
def log(db) -> dict[str, AuditEvent]:
    """Eight events, each unlike the first in one way."""
    events = {
        "plain": event(),
        "bob": event(username="bob"),
        "push": event(action="push"),
        "user": event(resource_type="user", resource_name="carol", project_name=""),
        "beta": event(project_name="beta", resource_name="beta/api"),
        "failed": event(outcome="failure"),
        "early": event(time=T0 - timedelta(days=3)),
        "late": event(time=T0 + timedelta(days=3), client_address="192.168.7.9"),
    }
    for name, e in events.items():
        # Each row says which it is, so a page can be read for the rows it shows.
        e.resource_name = e.resource_name if e.resource_name != "alpha/web" else f"alpha/web#{name}"
    AuditEvent.objects.all().delete()
    AuditEvent.objects.bulk_create(events.values())
    return {
        name: AuditEvent.objects.get(resource_name=e.resource_name, username=e.username) for name, e in events.items()
    }


FILTERS = [
    ({"user": "bob"}, {"bob"}),
    ({"operation": "push"}, {"push"}),
    ({"resource_type": "user"}, {"user"}),
    ({"project": "beta"}, {"beta"}),
    ({"outcome": "failure"}, {"failed"}),
    ({"since": "2030-03-12"}, {"late"}),
    ({"until": "2030-03-08"}, {"early"}),
    ({"since": "2030-03-13T11:59:59Z", "until": "2030-03-13T12:00:00+00:00"}, {"late"}),
    ({"since": "2030-03-10T13:00:00+01:00", "until": "2030-03-10"}, {"plain", "bob", "push", "user", "beta", "failed"}),
    ({"q": "BETA/a"}, {"beta"}),
    ({"q": "192.168.7"}, {"late"}),
    ({"q": "carol"}, {"user"}),
    (
        {"operation": "create", "outcome": "success", "project": "alpha", "since": "2030-03-09"},
        {"plain", "bob", "late"},
    ),
    ({"user": "alice", "q": "web", "until": "2030-03-10T12:00:00Z"}, {"plain", "push", "failed", "early"}),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[str(q) for q, _ in FILTERS])
def test_each_filter_and_their_combination_narrow_the_api_list(api, log, query, expected) -> None:
    results = api.get("/api/v1/audit-logs", query).json()["results"]
    assert {r["id"] for r in results} == {log[name].pk for name in expected}


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[str(q) for q, _ in FILTERS])
def test_each_filter_and_their_combination_narrow_the_logs_page(client, portal_admin, log, query, expected) -> None:
    client = logged_in(client, portal_admin)
    AuditEvent.objects.filter(action="login").delete()  # logging in is an event too
    answer = client.get(reverse("logs"), query, HTTP_HX_REQUEST="true")
    text = page_text(answer)
    shown = {name for name, e in log.items() if f">{e.resource_name}<" in text}
    assert answer.status_code == 200
    assert shown == expected and text.count("<tr>") - 1 == len(expected)


def test_free_text_ignores_case_and_never_matches_across_two_columns(api, log) -> None:
    assert len(api.get("/api/v1/audit-logs", {"q": "ALICE"}).json()["results"]) == 7
    # "alice" then "create": in one column each, so no event holds "alicecreate" or "alice create".
    assert api.get("/api/v1/audit-logs", {"q": "alicecreate"}).json()["results"] == []
    assert api.get("/api/v1/audit-logs", {"q": "alice create"}).json()["results"] == []
    assert len(api.get("/api/v1/audit-logs", {"q": "  alpha/web  "}).json()["results"]) == 6


def test_free_text_treats_wildcards_as_text(api, log) -> None:
    AuditEvent.objects.create(action="create", resource_type="repository", resource_name="team_a/100%")

    def found(text: str) -> list[str]:
        return [r["resource_name"] for r in api.get("/api/v1/audit-logs", {"q": text}).json()["results"]]

    assert found("100%") == found("m_a") == ["team_a/100%"]
    assert found("m%a") == found("a_1") == []


def test_the_date_bounds_take_the_whole_day_on_the_portal_clock(api, settings, db) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC on the 10th is already the 11th in Berlin.
    AuditEvent.objects.bulk_create([event(time=datetime(2030, 3, 10, 23, 30, tzinfo=UTC))])
    assert api.get("/api/v1/audit-logs", {"until": "2030-03-10"}).json()["results"] == []
    assert len(api.get("/api/v1/audit-logs", {"since": "2030-03-11", "until": "2030-03-11"}).json()["results"]) == 1


BAD_FILTERS = [
    ("since", "yesterday"),
    ("since", "2030-13-01"),
    ("until", "2030-02-30"),
    ("until", "2030-03-10T12:00:00"),  # no offset: which clock?
    ("operation", "frobnicate"),
    ("resource_type", "spaceship"),
    ("outcome", "maybe"),
    ("q", "nul\x00byte"),
    ("page_size", "0"),
    ("page_size", "many"),
]


@pytest.mark.parametrize(("name", "value"), BAD_FILTERS, ids=[f"{n}={v!r}" for n, v in BAD_FILTERS])
def test_a_bad_filter_is_refused_with_400_naming_it(api, log, name, value) -> None:
    answer = api.get("/api/v1/audit-logs", {name: value})
    assert answer.status_code == 400, answer.content
    assert name in answer.json()["errors"]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJhZnRlciI6WyJub3QgYSB0aW1lIiwxXX0", "eyJ4IjpbXX0"])
def test_a_cursor_the_list_did_not_hand_out_is_a_page_not_found(api, log, cursor) -> None:
    answer = api.get("/api/v1/audit-logs", {"cursor": cursor})
    assert answer.status_code == 404
    assert "cursor" in answer.json()["errors"]


@pytest.mark.parametrize(("name", "value"), BAD_FILTERS[:8], ids=[f"{n}={v!r}" for n, v in BAD_FILTERS[:8]])
def test_a_bad_filter_on_the_logs_page_is_a_form_error(client, portal_admin, log, name, value) -> None:
    answer = logged_in(client, portal_admin).get(reverse("logs"), {name: value}, HTTP_HX_REQUEST="true")
    text = page_text(answer)
    assert answer.status_code == 400
    assert 'role="alert"' in text and "Correct the filters" in text
    assert "alpha/web" not in text


def test_an_unknown_cursor_on_the_logs_page_offers_the_newest_events(client, portal_admin, log) -> None:
    answer = logged_in(client, portal_admin).get(reverse("logs"), {"cursor": "eyJ4Ijpb", "user": "bob"})
    text = page_text(answer)
    assert answer.status_code == 400
    assert "start again from the newest events" in text
    assert 'href="/logs/?user=bob"' in text


def test_the_filters_are_offered_on_both_logs_pages(client, portal_admin, alpha, log) -> None:
    client = logged_in(client, portal_admin)
    admin_page = page_text(client.get(reverse("logs")))
    project_tab = page_text(client.get(reverse("project-logs", args=["alpha"])))
    for name in ("q", "user", "operation", "resource_type", "outcome", "since", "until"):
        assert f'id="id_{name}"' in admin_page and f'id="id_{name}"' in project_tab
    assert 'id="id_project"' in admin_page and 'id="id_project"' not in project_tab
    assert '<option value="push">push</option>' in admin_page and 'type="date"' in admin_page


def test_the_project_tab_filters_within_its_project(client, role_users, log) -> None:
    client = logged_in(client, role_users["viewer"])
    text = page_text(client.get(reverse("project-logs", args=["alpha"]), {"user": "bob"}, HTTP_HX_REQUEST="true"))
    assert text.count("<tr>") - 1 == 1 and ">bob<" in text
    # A project given to the tab is not a way out of it.
    other = page_text(client.get(reverse("project-logs", args=["alpha"]), {"project": "beta"}, HTTP_HX_REQUEST="true"))
    assert "beta/api" not in other


def test_a_member_filters_their_projects_events_over_the_api(role_users, log) -> None:
    viewer = client_for(role_users["viewer"])
    Project.objects.filter(name="alpha").get()
    AuditEvent.objects.filter(project_name="alpha").update(project=Project.objects.get(name="alpha"))
    pushes = viewer.get("/api/v1/audit-logs", {"project": "alpha", "operation": "push"}).json()["results"]
    assert [r["id"] for r in pushes] == [log["push"].pk]
    assert viewer.get("/api/v1/audit-logs", {"operation": "push"}).status_code == 403


@pytest.fixture
def crowded_log(db) -> list[int]:
    """57 events over 4 distinct times (many equal): the ids in the list's order, newest first."""
    AuditEvent.objects.all().delete()
    AuditEvent.objects.bulk_create(
        [event(time=T0 + timedelta(seconds=number % 4), resource_name=f"r{number}") for number in range(57)]
    )
    return list(AuditEvent.objects.order_by("-time", "-id").values_list("id", flat=True))


def test_cursor_pages_walk_the_whole_log_both_ways_without_duplicates_or_gaps(api, crowded_log) -> None:
    pages: list[list[int]] = []
    url: str | None = "/api/v1/audit-logs?page_size=10"
    while url:
        body = api.get(url).json()
        assert set(body) == {"next", "previous", "results"}, "no count: it would read the whole table"
        pages.append([r["id"] for r in body["results"]])
        url = body["next"]
    assert [pk for page in pages for pk in page] == crowded_log
    assert [len(page) for page in pages] == [10, 10, 10, 10, 10, 7]
    # And back from the last page, following `previous`: the same pages in reverse.
    back: list[list[int]] = [pages[-1]]
    url = api.get(_last_link(api, "/api/v1/audit-logs?page_size=10")).json()["previous"]
    while url:
        body = api.get(url).json()
        back.append([r["id"] for r in body["results"]])
        url = body["previous"]
    assert back == pages[::-1]


def _last_link(api, url: str) -> str:
    """The URL of the last page, found by following `next`."""
    while (following := api.get(url).json()["next"]) is not None:
        url = following
    return url


def test_cursor_pages_keep_the_filters(api, crowded_log) -> None:
    first = api.get("/api/v1/audit-logs", {"page_size": 5, "q": "r1"}).json()
    assert parse_qs(urlsplit(first["next"]).query)["q"] == ["r1"]
    second = api.get(first["next"]).json()
    names = [r["resource_name"] for r in first["results"] + second["results"]]
    assert len(names) == len(set(names)) == 10 and all(name.startswith("r1") for name in names)


def test_the_logs_page_walks_older_and_newer(client, portal_admin, crowded_log) -> None:
    client = logged_in(client, portal_admin)
    seen: list[str] = []
    url: str | None = reverse("logs")
    pages = 0
    while url:
        text = page_text(client.get(url))
        seen += re.findall(r">(r[0-9]+)<", text)
        older = re.search(r'href="([^"]+)"[^>]*rel="next"', text)
        url = older.group(1).replace("&amp;", "&") if older else None
        pages += 1
        if pages > 1:
            assert 'rel="prev"' in text and "Newest" in text
    assert pages == 3 and len(seen) == len(set(seen)) == 57
    assert seen == [AuditEvent.objects.get(pk=pk).resource_name for pk in crowded_log]
    links = re.search(r'<nav class="wharf-pagination".*?</nav>', text, re.S)
    assert links is not None
    assert "Page" not in links.group(0) and " of " not in links.group(0), "no page numbers or totals: they would count"
    assert "wharf-pagination-count" not in text


def test_the_page_size_is_capped_at_100(api, db) -> None:
    AuditEvent.objects.bulk_create([event(resource_name=f"r{n}") for n in range(130)])
    assert len(api.get("/api/v1/audit-logs", {"page_size": 500}).json()["results"]) == 100
    Project.objects.bulk_create([Project(name=f"p{n:03d}") for n in range(110)])
    page = api.get("/api/v1/projects", {"page_size": 500}).json()
    assert len(page["results"]) == 100 and page["count"] >= 110


def test_the_schema_says_how_the_lists_page(db) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    audit = schema["paths"]["/api/v1/audit-logs"]["get"]
    parameters = {p["name"]: p for p in audit["parameters"]}
    filters = {"user", "operation", "resource_type", "project", "outcome", "since", "until", "q"}
    assert {"cursor", "page_size", *filters} <= set(parameters)
    assert "page" not in parameters
    assert "at most 100" in parameters["page_size"]["description"]
    projects = {p["name"]: p for p in schema["paths"]["/api/v1/projects"]["get"]["parameters"]}
    assert "at most 100" in projects["page_size"]["description"]
    page = schema["components"]["schemas"]["PaginatedAuditEventList"]
    assert page["required"] == ["next", "previous", "results"] and "count" not in page["properties"]
    assert "count" not in schema["components"]["schemas"]["PaginatedJobList"]["properties"]


def test_the_search_uses_the_trigram_index_on_postgresql(db) -> None:
    """On PostgreSQL the free-text search reads the trigram index of migration 0007, not the whole table."""
    AuditEvent.objects.bulk_create([event(resource_name=f"team{n}/web") for n in range(200)])
    found = AuditEventFilterSet({"q": "team17/"}, AuditEvent.objects.all()).qs
    assert [e.resource_name for e in found] == ["team17/web"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A table this small is read whole or in time order; what counts is that the index can answer.
            cursor.execute("ANALYZE portal_auditevent")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_indexscan = off")
        assert "audit_event_search" in found.explain()


def test_every_filter_has_an_index_in_the_lists_order(db) -> None:
    """Each exact filter can read its page in order from one index (AuditEvent.Meta.indexes)."""
    indexes = {tuple(index.fields): index for index in AuditEvent._meta.indexes}
    for column in ("username", "action", "resource_type", "project_name"):
        assert (column, "-time", "-id") in indexes
    assert ("-time", "-id") in indexes
    assert AuditEvent._meta.ordering == ["-time", "-id"]


@pytest.mark.parametrize("url", ["/api/v1/audit-logs", "/api/v1/audit-logs?q=alph", "/api/v1/audit-logs?user=alice"])
def test_the_audit_list_asks_as_many_queries_for_a_large_log_as_for_a_small_one(api, db, url) -> None:
    def queries(page_url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(page_url).status_code == 200
        return len(captured)

    api.get(url)  # the first request may also read what later ones remember
    AuditEvent.objects.bulk_create([event(resource_name=f"r{n}") for n in range(3)])
    small = queries(url)
    AuditEvent.objects.bulk_create([event(resource_name=f"r{n}", time=T0 + timedelta(seconds=n)) for n in range(400)])
    deep = api.get(_last_link(api, url)).json()["previous"]
    assert queries(url) == queries(deep) == small


def test_the_logs_page_asks_as_many_queries_for_a_large_log_as_for_a_small_one(client, portal_admin, db) -> None:
    client = logged_in(client, portal_admin)

    def queries() -> int:
        client.get(reverse("logs"))
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("logs"), {"operation": "create"}).status_code == 200
        return len(captured)

    AuditEvent.objects.bulk_create([event(resource_name=f"r{n}") for n in range(3)])
    small = queries()
    AuditEvent.objects.bulk_create([event(resource_name=f"r{n}") for n in range(400)])
    assert queries() == small


def _recorded(node: ast.Call, position: int) -> list[str]:
    """The string constants an argument of a record() call can be (both branches of `a if c else b`)."""
    if len(node.args) <= position:
        return []
    argument = node.args[position]
    branches = [argument.body, argument.orelse] if isinstance(argument, ast.IfExp) else [argument]
    return [b.value for b in branches if isinstance(b, ast.Constant) and isinstance(b.value, str)]


def test_the_logs_filters_know_every_operation_and_resource_type_the_portal_records() -> None:
    """The operation and resource type choices (and the API's 400 for others) cover every record() call."""
    root = Path(__file__).resolve().parent.parent
    operations, resource_types = set(), set()
    for package in ("portal", "projects", "registries", "hosts", "replication", "scanning"):
        for source in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "record":
                    operations.update(_recorded(node, 1))
                    resource_types.update(_recorded(node, 2))
    assert operations and operations <= set(AUDIT_OPERATIONS), operations - set(AUDIT_OPERATIONS)
    assert resource_types and resource_types <= set(AUDIT_RESOURCE_TYPES), resource_types - set(AUDIT_RESOURCE_TYPES)
