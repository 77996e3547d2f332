"""The Replication Rules and Endpoints tables on the server: Enable, Disable and Delete act on every ticked row,
each through its own service call with its own audit entry, and the page says which were done and which refused
and why; Delete opens a dialog naming every ticked row; the tables sort by the keys their FilterSets offer, on the
page and in the API (where an unknown key is a 400), and search and page like the other tables."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.core.audit import Actor
from portal.core.errors import NotFound
from portal.core.models import AuditEvent, Job, JobState
from projects.models import Project
from replication import services
from replication.models import Endpoint, EndpointKind, Execution, Rule, Trigger
from tests.conftest import client_for, logged_in, page_text

pytestmark = pytest.mark.django_db
API = "/api/v1/replication"


def shown(text: str, kind: str) -> list[str]:
    """The table's rows (data-rule or data-endpoint) in the order shown."""
    return re.findall(rf'<tr data-{kind}="([^"]+)">', text)


def running(rule: Rule) -> Execution:
    """An execution of the rule that is still running."""
    job = Job.objects.create(kind=services.EXECUTION, target=rule.name, state=JobState.RUNNING)
    return Execution.objects.create(rule=rule, job=job, cause=Execution.Cause.MANUAL)


@pytest.fixture
def endpoints(db) -> dict[str, Endpoint]:
    """Endpoints east (used by every rule), west (used by rule 'web') and spare (used by none); their URLs sort the
    other way round from their names."""
    urls = {"east": "https://c.example:443", "west": "https://b.example:443", "spare": "https://a.example:443"}
    return {name: Endpoint.objects.create(name=name, kind=EndpointKind.REGISTRY, url=url) for name, url in urls.items()}


@pytest.fixture
def rules(alpha: Project, beta: Project, endpoints: dict[str, Endpoint]) -> dict[str, Rule]:
    """Rules of alpha and beta with different projects, endpoints, triggers and states:

    name   project endpoint trigger   enabled
    api    beta    east     scheduled yes
    db     alpha   east     manual    no
    web    alpha   west     immediate yes
    """
    east, west = endpoints["east"], endpoints["west"]
    return {
        "api": Rule.objects.create(
            name="api", project=beta, endpoint=east, trigger=Trigger.SCHEDULED, cron="0 2 * * *", enabled=True
        ),
        "db": Rule.objects.create(name="db", project=alpha, endpoint=east, trigger=Trigger.MANUAL, enabled=False),
        "web": Rule.objects.create(name="web", project=alpha, endpoint=west, trigger=Trigger.IMMEDIATE, enabled=True),
    }


def act(client, action: str, names: list[str]):
    """Press a rules toolbar button with these rules ticked; the page it lands on."""
    return client.post(reverse("replication-rule-action"), {"action": action, "selected": names}, follow=True)


# --- the bulk services: one outcome per item ---------------------------------------------------------------


def test_a_row_deleted_meanwhile_is_refused_by_name_and_the_others_still_go(portal_admin, rules, endpoints):
    stale = Rule.objects.get(name="db")
    Rule.objects.filter(pk=stale.pk).delete()  # someone else deleted it after the page was drawn
    outcomes = services.delete_rules(Actor(portal_admin), [rules["api"], stale])
    assert [(outcome.name, outcome.error, outcome.status) for outcome in outcomes] == [
        ("api", None, 200),
        ("db", "rule 'db' no longer exists", 404),
    ]
    gone = Endpoint.objects.get(name="spare")
    Endpoint.objects.filter(pk=gone.pk).delete()
    with pytest.raises(NotFound, match="endpoint 'spare' no longer exists"):
        services.delete_endpoint(Actor(portal_admin), gone)


def test_deleting_rules_refuses_the_one_with_running_jobs_and_deletes_the_others(portal_admin, rules):
    running(rules["web"])
    outcomes = services.delete_rules(Actor(portal_admin), [rules["api"], rules["web"], rules["db"]])
    assert [(outcome.name, outcome.done, outcome.status) for outcome in outcomes] == [
        ("api", True, 200),
        ("web", False, 409),
        ("db", True, 200),
    ]
    assert outcomes[1].error == "rule 'web' has 1 running execution: stop or wait for it before deleting the rule"
    assert list(Rule.objects.values_list("name", flat=True)) == ["web"]
    deleted = AuditEvent.objects.filter(action="delete", resource_type="replication_rule")
    assert sorted(deleted.values_list("resource_name", flat=True)) == ["api", "db"]


def test_disabling_rules_disables_each_with_its_own_audit_entry(portal_admin, rules):
    execution = running(rules["web"])
    outcomes = services.set_rules_enabled(Actor(portal_admin), [rules["api"], rules["db"], rules["web"]], False)
    assert all(outcome.done for outcome in outcomes)
    assert not Rule.objects.filter(enabled=True).exists()
    # db was disabled already: nothing changed, nothing recorded.
    updated = AuditEvent.objects.filter(action="update", resource_type="replication_rule")
    assert sorted(updated.values_list("resource_name", flat=True)) == ["api", "web"]
    assert Job.objects.get(pk=execution.job_id).stop_requested


def test_deleting_endpoints_keeps_the_ones_rules_use(portal_admin, rules, endpoints):
    outcomes = services.delete_endpoints(Actor(portal_admin), [endpoints["east"], endpoints["spare"]])
    assert [(outcome.name, outcome.done) for outcome in outcomes] == [("east", False), ("spare", True)]
    assert outcomes[0].error == "endpoint 'east' is used by rules: api, db; it cannot be deleted"
    assert sorted(Endpoint.objects.values_list("name", flat=True)) == ["east", "west"]


# --- the rules page's buttons -------------------------------------------------------------------------------


def test_disable_acts_on_every_ticked_rule(client, portal_admin, rules):
    text = page_text(act(logged_in(client, portal_admin), "disable", ["web", "api"]))
    assert "Disabled rules api, web: their running jobs are being stopped." in text
    assert not Rule.objects.filter(enabled=True).exists()


def test_enable_acts_on_every_ticked_rule_and_starts_an_execution_each(client, portal_admin, rules):
    Rule.objects.update(enabled=False)
    text = page_text(act(logged_in(client, portal_admin), "enable", ["web", "db"]))
    assert "Enabled rules db, web." in text
    assert sorted(Rule.objects.filter(enabled=True).values_list("name", flat=True)) == ["db", "web"]
    assert Execution.objects.filter(cause=Execution.Cause.ENABLED).count() == 2


def test_a_refused_delete_is_reported_beside_the_ones_done(client, portal_admin, rules):
    running(rules["db"])
    text = page_text(act(logged_in(client, portal_admin), "delete", ["api", "db", "web"]))
    assert "Deleted rules api, web." in text
    assert "Not deleted: db: rule &#x27;db&#x27; has 1 running execution" in text
    assert list(Rule.objects.values_list("name", flat=True)) == ["db"]


@pytest.mark.parametrize("selection", [[], [""], ["gone"]])
def test_an_action_without_a_ticked_rule_asks_for_one(client, portal_admin, rules, selection):
    text = page_text(act(logged_in(client, portal_admin), "disable", selection))
    assert "Select at least one rule to disable." in text
    assert Rule.objects.filter(enabled=True).count() == 2


def test_an_unknown_action_is_refused(client, portal_admin, rules):
    text = page_text(act(logged_in(client, portal_admin), "explode", ["api"]))
    assert "Choose Enable, Disable or Delete." in text
    assert Rule.objects.count() == 3


def test_only_portal_admins_act_on_rules_and_endpoints(client, role_users, rules):
    client = logged_in(client, role_users["project_admin"])
    assert client.post(reverse("replication-rule-action"), {"action": "delete", "selected": ["db"]}).status_code == 403
    assert client.post(reverse("replication-rule-delete"), {"selected": ["db"]}).status_code == 403
    assert client.post(reverse("replication-endpoint-delete"), {"selected": ["spare"]}).status_code == 403
    assert Rule.objects.count() == 3 and Endpoint.objects.count() == 3


def test_rule_delete_dialog_names_every_ticked_rule_and_its_delete_deletes_them(client, portal_admin, rules):
    client = logged_in(client, portal_admin)
    url = reverse("replication-rule-delete")
    opened = page_text(client.get(url, {"selected": ["web", "api"]}, HTTP_HX_REQUEST="true"))
    assert "Delete these 2 replication rules" in opened
    assert re.findall(r'<li data-rule="([^"]+)">', opened) == ["api", "web"]
    assert opened.count('<input type="hidden" name="selected"') == 2
    deleted = client.post(url, {"selected": ["web", "api"]}, HTTP_HX_REQUEST="true")
    assert deleted.status_code == 204 and deleted["HX-Redirect"] == reverse("replication-rules")
    assert list(Rule.objects.values_list("name", flat=True)) == ["db"]
    assert "Deleted rules api, web." in page_text(client.get(reverse("replication-rules")))


def test_rule_delete_dialog_without_a_ticked_rule_goes_back_with_a_message(client, portal_admin, rules):
    answer = logged_in(client, portal_admin).get(reverse("replication-rule-delete"), follow=True)
    assert "Select at least one rule to delete." in page_text(answer)


# --- the endpoints page's Delete ----------------------------------------------------------------------------


def test_endpoint_delete_dialog_names_every_ticked_endpoint(client, portal_admin, endpoints):
    opened = logged_in(client, portal_admin).get(
        reverse("replication-endpoint-delete"), {"selected": ["spare", "east"]}, HTTP_HX_REQUEST="true"
    )
    assert opened.status_code == 200
    assert re.findall(r'<li data-endpoint="([^"]+)">', page_text(opened)) == ["east", "spare"]
    assert Endpoint.objects.count() == 3


def test_deleting_endpoints_reports_the_one_rules_use_beside_the_ones_deleted(client, portal_admin, rules):
    Rule.objects.filter(name="web").delete()
    answer = logged_in(client, portal_admin).post(
        reverse("replication-endpoint-delete"), {"selected": ["west", "east", "spare"]}, follow=True
    )
    text = page_text(answer)
    assert "Deleted endpoints spare, west." in text
    assert "Not deleted: east: endpoint &#x27;east&#x27; is used by rules: api, db; it cannot be deleted" in text
    assert list(Endpoint.objects.values_list("name", flat=True)) == ["east"]


@pytest.mark.parametrize("selection", [[], ["gone"]])
def test_deleting_endpoints_without_a_ticked_one_asks_for_one(client, portal_admin, endpoints, selection):
    answer = logged_in(client, portal_admin).post(
        reverse("replication-endpoint-delete"), {"selected": selection}, follow=True
    )
    assert "Select at least one endpoint to delete." in page_text(answer)
    assert Endpoint.objects.count() == 3


# --- sort, search, page size --------------------------------------------------------------------------------

RULE_ORDERS = {
    "name": ["api", "db", "web"],
    "-name": ["web", "db", "api"],
    "project": ["db", "web", "api"],
    "-project": ["api", "db", "web"],
    "endpoint": ["api", "db", "web"],
    "-endpoint": ["web", "api", "db"],
    "trigger": ["web", "db", "api"],
    "-trigger": ["api", "db", "web"],
    "enabled": ["db", "api", "web"],
    "-enabled": ["api", "web", "db"],
}


@pytest.mark.parametrize(("sort", "order"), RULE_ORDERS.items())
def test_rules_sort_by_each_key_on_the_page(client, portal_admin, rules, sort, order):
    text = page_text(logged_in(client, portal_admin).get(reverse("replication-rules"), {"sort": sort}))
    assert shown(text, "rule") == order


@pytest.mark.parametrize(("sort", "order"), RULE_ORDERS.items())
def test_rules_sort_by_each_key_in_the_api(portal_admin, rules, sort, order):
    answer = client_for(portal_admin).get(f"{API}/rules", {"sort": sort})
    assert answer.status_code == 200
    assert [rule["name"] for rule in answer.json()["results"]] == order


def test_the_sorted_column_says_so_and_links_the_reverse(client, portal_admin, rules):
    text = page_text(logged_in(client, portal_admin).get(reverse("replication-rules"), {"sort": "enabled"}))
    assert '<th class="left" aria-sort="ascending"><a href="?sort=-enabled" data-sort="enabled">Enabled' in text


@pytest.mark.parametrize("sort", ["description", "project__name", "-nope", "cron"])
def test_an_unknown_sort_key_shows_the_default_order_and_the_api_refuses_it(client, portal_admin, rules, sort):
    text = page_text(logged_in(client, portal_admin).get(reverse("replication-rules"), {"sort": sort}))
    assert shown(text, "rule") == ["api", "db", "web"]
    answer = client_for(portal_admin).get(f"{API}/rules", {"sort": sort})
    assert answer.status_code == 400 and "sort" in answer.json()["errors"]
    assert client_for(portal_admin).get(f"{API}/endpoints", {"sort": sort}).status_code == 400


@pytest.mark.parametrize("sort", ["", ",", "-name,"])
def test_an_empty_sort_key_is_the_default_order_as_the_schema_says(portal_admin, rules, sort):
    answer = client_for(portal_admin).get(f"{API}/rules", {"sort": sort})
    assert answer.status_code == 200
    expected = ["web", "db", "api"] if sort == "-name," else ["api", "db", "web"]
    assert [rule["name"] for rule in answer.json()["results"]] == expected


@pytest.mark.parametrize(
    ("sort", "order"),
    [("name", ["east", "spare", "west"]), ("-name", ["west", "spare", "east"]), ("url", ["spare", "west", "east"])],
)
def test_endpoints_sort_by_name_or_url_on_the_page_and_in_the_api(client, portal_admin, endpoints, sort, order):
    text = page_text(logged_in(client, portal_admin).get(reverse("replication-endpoints"), {"sort": sort}))
    assert shown(text, "endpoint") == order
    answer = client_for(portal_admin).get(f"{API}/endpoints", {"sort": sort})
    assert [endpoint["name"] for endpoint in answer.json()["results"]] == order


def test_project_admins_sort_their_rules_in_the_api(role_users, rules):
    answer = client_for(role_users["project_admin"]).get(f"{API}/rules", {"sort": "-name"})
    assert [rule["name"] for rule in answer.json()["results"]] == ["web", "db"]


def test_search_keeps_the_sort_and_says_when_nothing_matches(client, portal_admin, rules):
    client = logged_in(client, portal_admin)
    url = reverse("replication-rules")
    region = page_text(client.get(url, {"q": "d", "sort": "-name"}, HTTP_HX_REQUEST="true"))
    assert 'id="rule-table"' in region and "<html" not in region
    assert shown(region, "rule") == ["db"]
    none = page_text(client.get(url, {"q": "nothing"}))
    assert "No rules match 'nothing'." in none and "Create a replication rule" not in none
    assert "No endpoints match" in page_text(client.get(reverse("replication-endpoints"), {"q": "nothing"}))


def test_page_size_in_the_url_sets_the_rows_and_keeps_the_sort(client, portal_admin, rules):
    text = page_text(
        logged_in(client, portal_admin).get(reverse("replication-rules"), {"page_size": "2", "sort": "-name"})
    )
    assert shown(text, "rule") == ["web", "db"]
    assert '<option value="2" selected>2</option>' in text
    assert "page_size=2" in text and "sort=-name" in text and "page=2" in text


def test_empty_tables_keep_their_empty_states(client, portal_admin):
    client = logged_in(client, portal_admin)
    rules = page_text(client.get(reverse("replication-rules")))
    assert "No replication rules yet" in rules and "Create a replication rule" in rules
    endpoints = page_text(client.get(reverse("replication-endpoints")))
    assert "No replication endpoints yet" in endpoints and "Add an endpoint" in endpoints
