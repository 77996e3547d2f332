"""Home as a dashboard: the user's projects with their role, recent pushes, failed jobs and hosts not ON, each
scoped by what the user may see and linking to where to act."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core.models import Job, JobState, User
from projects.models import Membership, Project, Role
from registries.models import Repository, Tag
from tests.conftest import logged_in, page_text


def table(text: str, name: str) -> str:
    """The HTML of the Home table marked data-list=name."""
    found = re.search(rf'<table [^>]*data-list="{name}"[^>]*>.*?</table>', text, re.S)
    assert found is not None, name
    return found.group(0)


def chart_data(text: str, data_id: str) -> dict:
    """The json_script data of a chart on the page."""
    found = re.search(rf'<script id="{data_id}" type="application/json">(.*?)</script>', text, re.S)
    assert found is not None, data_id
    return json.loads(found.group(1))


@pytest.fixture
def site(alpha: Project, beta: Project, role_users: dict[str, User | None]) -> None:
    """In alpha and beta: a pushed tag, an unreachable and a disabled host, an ON host, containers; failed jobs of
    alpha's developer and of beta's admin."""
    now = timezone.now()
    for age, project in enumerate((alpha, beta)):
        repository = Repository.objects.create(project=project, name=f"{project.name}/web")
        Tag.objects.create(repository=repository, name="1.0", digest="sha256:" + "a" * 64, size=2048,
                           pushed_by="alice", pushed_at=now - timedelta(minutes=age))  # fmt: skip
        for state in (HostState.UNREACHABLE, HostState.DISABLED, HostState.ON):
            error = "connection refused" if state == HostState.UNREACHABLE else ""
            url = f"http://127.0.0.1:{2000 + age * 10 + len(state)}"
            ContainerHost.objects.create(project=project, name=f"{project.name}-{state}", state=state, url=url,
                                         last_error=error)  # fmt: skip
        host = ContainerHost.objects.get(project=project, state=HostState.ON)
        for index, state in enumerate((ContainerState.RUNNING, ContainerState.RUNNING, ContainerState.EXITED)):
            Container.objects.create(host=host, container_id=f"{age}{index}" * 8, name=f"c{index}", image="busybox",
                                     state=state)  # fmt: skip
    for who in ("developer", "other_project_admin"):
        user = role_users[who]
        assert user is not None
        Job.objects.create(kind="hosts.provision", target=f"{who}-job", state=JobState.FAILED, created_by=user.username,
                           error=f"{who}'s job failed", finished=now)  # fmt: skip
    Job.objects.create(kind="hosts.provision", target="done", state=JobState.SUCCEEDED, created_by="alpha-developer")


def home(user: User | None) -> str:
    assert user is not None
    response = logged_in(Client(), user).get("/")
    assert response.status_code == 200
    return page_text(response)


def test_developer_sees_only_their_projects_pushes_hosts_and_jobs(site, role_users) -> None:
    text = home(role_users["developer"])

    assert re.findall(r'href="/projects/([^/"]+)/"', table(text, "my-projects")) == ["alpha"]
    assert "Developer" in table(text, "my-projects")
    pushes = table(text, "recent-pushes")
    assert 'href="/projects/alpha/repositories/web/"' in pushes and "alpha/web:1.0" in pushes
    assert "beta/" not in pushes
    hosts = table(text, "hosts-not-on")
    assert re.findall(r">(alpha-\w+|beta-\w+)</a>", hosts) == ["alpha-unreachable", "alpha-disabled"]
    host = ContainerHost.objects.get(name="alpha-unreachable")
    assert f'href="/hosts/{host.pk}/"' in hosts and "connection refused" in hosts
    jobs = table(text, "failed-jobs")
    assert "developer-job" in jobs and "other_project_admin-job" not in jobs and "done" not in jobs
    job = Job.objects.get(target="developer-job")
    assert f'href="/jobs/{job.pk}/panel/"' in jobs
    # Containers of alpha's hosts only: 2 running, 1 exited.
    assert chart_data(text, "container-state-chart-data")["series"][0]["values"] == [2, 1]


def test_portal_admin_sees_everything_with_the_log_dialogs(site, role_users) -> None:
    text = home(role_users["portal_admin"])

    pushes = table(text, "recent-pushes")
    assert pushes.index("alpha/web:1.0") < pushes.index("beta/web:1.0")  # newest first
    assert re.findall(r">(alpha-\w+|beta-\w+)</a>", table(text, "hosts-not-on")) == [
        "alpha-unreachable", "beta-unreachable", "alpha-disabled", "beta-disabled",
    ]  # fmt: skip
    jobs = table(text, "failed-jobs")
    assert "developer-job" in jobs and "other_project_admin-job" in jobs
    job = Job.objects.get(target="developer-job")
    assert f'hx-get="/configuration/jobs/{job.pk}/"' in jobs
    assert chart_data(text, "container-state-chart-data")["series"][0]["values"] == [4, 2]


def test_links_on_home_open_for_the_user(site, role_users) -> None:
    user = role_users["developer"]
    assert user is not None
    browser = logged_in(Client(), user)
    text = page_text(browser.get("/"))
    links = re.findall(r'<a href="(/(?:projects|hosts|jobs)/[^"]+)"', text)
    assert len(links) >= 4
    for link in links:
        assert browser.get(link).status_code == 200, link


def test_viewer_with_nothing_failed_or_down_gets_next_steps(alpha, make_user) -> None:
    user = make_user("quiet")
    Membership.objects.create(project=alpha, user=user, role=Role.VIEWER)
    text = home(user)

    assert "Nothing pushed yet" in text and "Every host you can see is ON" in text
    assert "No failed jobs among those you started" in text
    assert "container-state-chart" not in text  # no containers: no chart
