"""The charts' data from the database: each page hands charts.js the numbers, and lists them as a table (what
people without JavaScript see, and what screen readers read) with a summary on the canvas."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from hosts.models import Container, ContainerHost, ContainerState, HostSample
from portal.core.charts import Chart, Series, last_days, per_day, size
from portal.core.models import AuditEvent, Job, JobLogLine, JobState, Outcome, User
from projects.models import Project
from registries.models import DailyPulls, Repository, Tag
from registries.services import GARBAGE_COLLECTION
from tests.conftest import logged_in, page_text


def chart_data(text: str, chart_id: str) -> dict:
    """The json_script data of a chart on the page."""
    found = re.search(rf'<script id="{chart_id}-data" type="application/json">(.*?)</script>', text, re.S)
    assert found is not None, chart_id
    return json.loads(found.group(1))


def chart_table(text: str, chart_id: str) -> list[list[str]]:
    """The rows (label, then each series' value) of the table under a chart."""
    figure = re.search(rf'<figure [^>]*data-chart-figure="{chart_id}">(.*?)</figure>', text, re.S)
    assert figure is not None, chart_id
    body = re.search(r"<tbody>(.*?)</tbody>", figure.group(1), re.S)
    assert body is not None
    return [
        [html.unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def aria_label(text: str, chart_id: str) -> str:
    """The summary on a chart's canvas."""
    found = re.search(rf'<canvas id="{chart_id}"[^>]*aria-label="([^"]*)"', text)
    assert found is not None, chart_id
    return html.unescape(found.group(1))


def get(user: User | None, url: str) -> str:
    assert user is not None
    response = logged_in(Client(), user).get(url)
    assert response.status_code == 200, url
    return page_text(response)


# --- the helper ---


def test_chart_table_and_summary_show_formatted_numbers() -> None:
    chart = Chart("c", "bar", "Freed", ["#1", "#2"], [Series("Freed", [1024, 3 * 1024 * 1024])], display=size)
    assert chart.rows() == [("#1", ["1.0\xa0KB"]), ("#2", ["3.0\xa0MB"])]
    assert chart.summary() == "Freed: Freed 3.0\xa0MB in total."
    assert chart.data()["series"][0]["values"] == [1024, 3 * 1024 * 1024]


def test_per_day_fills_the_days_without_values_with_zero() -> None:
    days = last_days(3, today=date(2026, 3, 2))
    assert days == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    assert per_day([(date(2026, 3, 1), 4), (date(2026, 3, 1), 1), (date(2026, 1, 1), 9)], days) == [0, 5, 0]


# --- project summary ---


def test_project_summary_has_repositories_storage_and_pulls_per_day(alpha: Project, beta: Project, role_users) -> None:
    web = Repository.objects.create(project=alpha, name="alpha/web")
    db = Repository.objects.create(project=alpha, name="alpha/db")
    # Two tags of one image count its size once in the storage used, and with each tag in the repository's bar.
    Tag.objects.create(repository=web, name="1.0", digest="sha256:" + "a" * 64, size=3000)
    Tag.objects.create(repository=web, name="latest", digest="sha256:" + "a" * 64, size=3000)
    Tag.objects.create(repository=db, name="1.0", digest="sha256:" + "b" * 64, size=1000)
    Tag.objects.create(repository=Repository.objects.create(project=beta, name="beta/x"), name="1", size=99)
    today = timezone.now().astimezone(UTC).date()
    DailyPulls.objects.create(project=alpha, day=today, count=7)
    DailyPulls.objects.create(project=alpha, day=today - timedelta(days=2), count=3)
    DailyPulls.objects.create(project=alpha, day=today - timedelta(days=30), count=100)  # outside the 30 days
    DailyPulls.objects.create(project=beta, day=today, count=50)

    text = get(role_users["viewer"], "/projects/alpha/")

    assert re.search(r'data-field="repository-count"><a [^>]*>2</a>', text)
    assert re.search(r'data-field="storage-used">3.9\xa0KB<', text)  # 4000 bytes
    storage = chart_data(text, "storage-chart")
    assert (storage["labels"], storage["series"][0]["values"]) == (["alpha/web", "alpha/db"], [6000, 1000])
    pulls = chart_data(text, "pulls-chart")
    assert len(pulls["labels"]) == 30 and pulls["labels"][-1] == today.isoformat()
    assert pulls["series"][0]["values"][-3:] == [3, 0, 7] and sum(pulls["series"][0]["values"]) == 10
    assert chart_table(text, "pulls-chart")[-1] == [today.isoformat(), "7"]
    assert aria_label(text, "pulls-chart") == "Pulls per day, last 30 days: Pulls 10 in total."


def test_project_summary_without_images_says_where_to_push(alpha: Project, role_users) -> None:
    text = get(role_users["viewer"], "/projects/alpha/")
    assert "No images pushed yet" in text and 'data-chart-figure="storage-chart"' not in text
    assert sum(chart_data(text, "pulls-chart")["series"][0]["values"]) == 0


# --- garbage collection ---


def test_configuration_charts_the_space_each_gc_run_freed(portal_admin: User) -> None:
    finished = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    for number, freed in enumerate((5 * 1024 * 1024, 0, 2048)):
        job = Job.objects.create(kind=GARBAGE_COLLECTION, state=JobState.SUCCEEDED, finished=finished,
                                 created=finished + timedelta(days=number))  # fmt: skip
        JobLogLine.objects.create(job=job, text=f"freed {freed} bytes: 3 blobs deleted, 0 untagged manifests")
    Job.objects.create(kind=GARBAGE_COLLECTION, state=JobState.RUNNING)  # no outcome yet: not a bar

    text = get(portal_admin, "/configuration/")

    data = chart_data(text, "gc-freed-chart")
    assert data["series"][0]["values"] == [5 * 1024 * 1024, 0, 2048]  # oldest first
    assert data["unit"] == "bytes" and len(data["labels"]) == 3
    assert [row[1] for row in chart_table(text, "gc-freed-chart")] == ["5.0\xa0MB", "0\xa0bytes", "2.0\xa0KB"]


def test_configuration_without_gc_runs_has_no_chart(portal_admin: User) -> None:
    assert "gc-freed-chart" not in get(portal_admin, "/configuration/")


# --- audit activity ---


@pytest.fixture
def audit_events(alpha: Project, beta: Project) -> date:
    """Today: 3 successes and a failure in alpha, one in beta; two days ago a failure in alpha; 40 days ago one."""
    now = timezone.now()
    for outcome, project, age in [
        (Outcome.SUCCESS, alpha, 0), (Outcome.SUCCESS, alpha, 0), (Outcome.SUCCESS, alpha, 0),
        (Outcome.FAILURE, alpha, 0), (Outcome.SUCCESS, beta, 0), (Outcome.FAILURE, alpha, 2),
        (Outcome.SUCCESS, alpha, 40),
    ]:  # fmt: skip
        AuditEvent.objects.create(time=now - timedelta(days=age), action="push", resource_type="repository",
                                  project=project, project_name=project.name, outcome=outcome)  # fmt: skip
    return now.astimezone(UTC).date()


def test_logs_chart_activity_per_day_by_outcome(audit_events: date, portal_admin: User) -> None:
    text = get(portal_admin, "/logs/")

    data = chart_data(text, "audit-activity-chart")
    succeeded, failed = (series["values"] for series in data["series"])
    assert data["labels"][-1] == audit_events.isoformat() and data["stacked"] is True
    logins = AuditEvent.objects.filter(action="login").count()  # the admin's own login today
    assert (succeeded[-1], failed[-1], failed[-3], sum(succeeded), sum(failed)) == (4 + logins, 1, 1, 4 + logins, 2)
    assert chart_table(text, "audit-activity-chart")[-1] == [audit_events.isoformat(), str(4 + logins), "1"]


def test_project_logs_chart_only_that_projects_activity(audit_events: date, role_users) -> None:
    data = chart_data(get(role_users["viewer"], "/projects/alpha/logs/"), "audit-activity-chart")
    assert [series["values"][-1] for series in data["series"]] == [3, 1]


def test_filtering_the_log_table_keeps_the_chart_out_of_the_region(audit_events: date, portal_admin: User) -> None:
    response = logged_in(Client(), portal_admin).get("/logs/", {"operation": "push"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "audit-activity-chart" not in page_text(response)


# --- hosts ---


@pytest.fixture
def host(alpha: Project) -> ContainerHost:
    """A host of alpha with samples over 90 minutes (one older than the chart's hour) and containers."""
    host = ContainerHost.objects.create(project=alpha, name="docker-1", url="http://127.0.0.1:2375")
    now = timezone.now()
    for minutes, cpu, used in [(90, 50.0, 900), (40, None, 100), (20, 12.5, 200), (1, 25.0, 300)]:
        HostSample.objects.create(host=host, time=now - timedelta(minutes=minutes), cpu_percent=cpu,
                                  memory_used_bytes=used * 1024 * 1024, memory_total_bytes=2**31)  # fmt: skip
    states = [ContainerState.RUNNING] * 3 + [ContainerState.EXITED, ContainerState.PAUSED, ContainerState.REMOVED]
    for index, state in enumerate(states):
        Container.objects.create(host=host, container_id=f"{index:064x}", name=f"c{index}", image="busybox",
                                 state=state)  # fmt: skip
    return host


def test_host_page_charts_the_last_hour_of_samples_and_containers_per_state(host, role_users) -> None:
    text = get(role_users["viewer"], f"/hosts/{host.pk}/")

    cpu = chart_data(text, "host-cpu-chart")
    assert cpu["series"][0]["values"] == [None, 12.5, 25.0] and cpu["unit"] == "percent"
    memory = chart_data(text, "host-memory-chart")
    assert memory["series"][0]["values"] == [m * 1024 * 1024 for m in (100, 200, 300)]
    assert [row[1] for row in chart_table(text, "host-cpu-chart")] == ["no data", "12.5 %", "25 %"]
    assert aria_label(text, "host-cpu-chart").endswith("CPU now 25 %.")
    states = chart_data(text, "container-state-chart")
    assert (states["labels"], states["series"][0]["values"]) == (["Running", "Paused", "Exited"], [3, 1, 1])
    assert aria_label(text, "container-state-chart") == "Containers per state: Running 3, Paused 1, Exited 1."


def test_host_page_without_samples_says_when_they_come(alpha: Project, role_users) -> None:
    host = ContainerHost.objects.create(project=alpha, name="new", url="http://127.0.0.1:2376")
    text = get(role_users["viewer"], f"/hosts/{host.pk}/")
    assert "No CPU and memory samples in the last hour" in text and "host-cpu-chart" not in text


def test_host_charts_of_another_project_are_not_shown(host, role_users) -> None:
    user = role_users["other_project_admin"]
    assert user is not None
    assert logged_in(Client(), user).get(f"/hosts/{host.pk}/").status_code == 404
