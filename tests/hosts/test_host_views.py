"""The hosts and containers pages through the Django test client: the project selector, Container Hosts and the
+Host dialog, a project's Infrastructure tab, Containers, the Provision dialog and a container's page.

Nothing answers at the hosts' URLs here (127.0.0.1:1 refuses), so every live read shows its failure; the pages
against a real dockerd are in tests/e2e/test_hosts_browser.py.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core import credentials
from portal.core.audit import Actor
from portal.core.jobs import create_job
from portal.core.models import Job, JobState, User
from projects.models import Project
from projects.selection import SESSION_KEY
from tests.conftest import ROLES, logged_in, page_text
from tests.portal.test_trust import make_certificate

REFUSING = "http://127.0.0.1:1"


def make_host(project: Project, name: str = "docker-1", url: str = REFUSING, **fields: object) -> ContainerHost:
    """A saved host row, as if added earlier; nothing listens at its URL."""
    return ContainerHost.objects.create(project=project, name=name, url=url, **fields)


def make_container(host: ContainerHost, name: str, **fields: object) -> Container:
    """A container row on the host, as collection or provisioning would leave it."""
    values: dict[str, object] = {"container_id": name.encode().hex().ljust(64, "0"), "image": "busybox:1"}
    return Container.objects.create(host=host, name=name, **(values | fields))


@pytest.fixture
def host(alpha: Project) -> ContainerHost:
    """An ON Docker host of project alpha with some facts."""
    return make_host(alpha, engine_version="20.10.24", cpus=2, memory_bytes=2 * 1024**3, containers_running=1)


def field_error(text: str, field: str) -> str:
    """The error shown under a dialog's field ("" when the field shows none)."""
    match = re.search(
        rf'<div class="clr-form-control clr-error">\s*<label for="id_{field}".*?wharf-field-error">(.*?)</span>',
        text,
        re.S,
    )
    return match.group(1) if match else ""


def as_user(client: Client, role_users: dict[str, User | None], role: str) -> Client:
    """The test client logged in as the user of that role."""
    user = role_users[role]
    assert user is not None
    return logged_in(client, user)


# --- the project selector ---------------------------------------------------------------------------


def test_selector_lists_only_projects_the_user_may_view(client, role_users, alpha, beta) -> None:
    text = page_text(as_user(client, role_users, "viewer").get("/hosts/"))
    assert '<option value="alpha" selected>' in text
    assert 'value="beta"' not in text


def test_selector_keeps_the_choice_in_the_session(client, role_users, alpha, beta, host) -> None:
    make_host(beta, "beta-host", "http://127.0.0.1:2")
    client = as_user(client, role_users, "portal_admin")
    assert "docker-1" in page_text(client.get("/hosts/"))  # alpha comes first by name
    chosen = client.post("/select-project/", {"project": "beta", "next": "/hosts/"}, HTTP_HX_REQUEST="true")
    assert chosen.status_code == 204 and chosen["HX-Redirect"] == "/hosts/"
    assert client.session[SESSION_KEY] == "beta"
    text = page_text(client.get("/hosts/"))
    assert "beta-host" in text and "docker-1" not in text
    assert '<option value="beta" selected>' in page_text(client.get("/containers/"))


def test_selecting_a_project_one_may_not_view_changes_nothing(client, role_users, alpha, beta) -> None:
    client = as_user(client, role_users, "viewer")
    client.post("/select-project/", {"project": "beta", "next": "/containers/"})
    assert client.session.get(SESSION_KEY) == "alpha"
    assert '<option value="alpha" selected>' in page_text(client.get("/containers/"))


def test_switching_projects_on_a_host_page_goes_to_the_host_list(client, role_users, alpha, beta, host) -> None:
    client = as_user(client, role_users, "portal_admin")
    chosen = client.post("/select-project/", {"project": "beta", "next": f"/hosts/{host.pk}/"})
    assert chosen.status_code == 302 and chosen["Location"] == "/hosts/"
    away = client.post("/select-project/", {"project": "beta", "next": "https://elsewhere.example/"})
    assert away["Location"] == "/"


def test_navigation_offers_containers_and_container_hosts(client, role_users, alpha) -> None:
    text = page_text(as_user(client, role_users, "viewer").get("/"))
    assert 'href="/containers/"' in text and 'href="/hosts/"' in text and "Infrastructure" in text


# --- Container Hosts --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "developer", "project_admin", "portal_admin"])
def test_every_role_sees_the_host_list_and_only_admins_get_add(client, role_users, host, role) -> None:
    response = as_user(client, role_users, role).get("/hosts/")
    text = page_text(response)
    assert response.status_code == 200
    assert "docker-1" in text and "20.10.24" in text and "2.0\xa0GB" in text and "no TLS" in text
    assert ("+ Host" in text) == (role in ("project_admin", "portal_admin"))


def test_host_states_show_as_badges_with_the_last_error(client, role_users, alpha) -> None:
    make_host(alpha, "gone", "http://127.0.0.1:2", state=HostState.UNREACHABLE, last_error="connection refused")
    make_host(alpha, "resting", "http://127.0.0.1:3", state=HostState.DISABLED)
    text = page_text(as_user(client, role_users, "viewer").get("/hosts/"))
    assert "UNREACHABLE" in text and "connection refused" in text and "DISABLED" in text


def test_host_filter_and_pagination(client, role_users, alpha) -> None:
    for number in range(25):
        make_host(alpha, f"node-{number:02}", f"http://127.0.0.1:{2000 + number}")
    client = as_user(client, role_users, "viewer")
    first = page_text(client.get("/hosts/"))
    assert "node-00" in first and "node-24" not in first and "1 - 20 of 25" in first
    assert "node-24" in page_text(client.get("/hosts/?page=2"))
    region = client.get("/hosts/?q=node-1", HTTP_HX_REQUEST="true")
    assert "<html" not in page_text(region) and "node-13" in page_text(region) and "node-02" not in page_text(region)


def test_a_user_without_projects_sees_a_message(client, make_user) -> None:
    text = page_text(logged_in(client, make_user("loner")).get("/hosts/"))
    assert "You are not a member of any project yet" in text


def test_infrastructure_tab_lists_the_project_hosts(client, role_users, host) -> None:
    response = as_user(client, role_users, "developer").get("/projects/alpha/infrastructure/")
    text = page_text(response)
    assert response.status_code == 200 and "docker-1" in text and "+ Host" not in text
    assert 'aria-current="page">Infrastructure' in text
    assert as_user(client, role_users, "other_project_admin").get("/projects/alpha/infrastructure/").status_code == 404


def test_viewers_and_developers_cannot_open_the_add_dialog(client, role_users, alpha) -> None:
    assert as_user(client, role_users, "viewer").get("/projects/alpha/hosts/new/").status_code == 403
    assert as_user(client, role_users, "developer").get("/projects/alpha/hosts/new/").status_code == 403


def test_add_dialog_offers_only_the_projects_certificate_credentials(
    client, role_users, portal_admin, alpha, beta
) -> None:
    actor = Actor(portal_admin)
    for name, project in (("tls-client", alpha), ("global-tls", None), ("beta-tls", beta)):
        keys = make_certificate("wharf-client", [])
        credentials.create_credential(
            actor, name, "certificate", certificate=keys.cert_pem, private_key=keys.key_pem, project=project
        )
    credentials.create_credential(
        actor, "robot", "password", username="robot", password="Robot-Passw0rd", project=alpha
    )
    text = page_text(as_user(client, role_users, "project_admin").get("/projects/alpha/hosts/new/"))
    assert "New Container Host" in text and 'value="vch"' in text and 'value="docker"' in text
    assert "tls-client" in text
    for name in ("robot", "global-tls", "beta-tls"):
        assert name not in text
    # A portal administrator may pick any certificate credential, global ones included.
    text = page_text(as_user(client, role_users, "portal_admin").get("/projects/alpha/hosts/new/"))
    assert "tls-client" in text and "global-tls" in text and "beta-tls" in text


def test_add_dialog_puts_a_bad_url_next_to_the_url_field(client, role_users, alpha) -> None:
    client = as_user(client, role_users, "project_admin")
    form = {"name": "docker-1", "kind": "docker", "url": "ftp://127.0.0.1:2375"}
    response = client.post("/projects/alpha/hosts/new/", form, HTTP_HX_REQUEST="true")
    text = page_text(response)
    assert response.status_code == 400
    assert field_error(text, "url") == "The scheme must be http or https." and not ContainerHost.objects.exists()


def test_add_dialog_says_the_host_refused_without_a_server_error(client, role_users, alpha) -> None:
    client = as_user(client, role_users, "project_admin")
    form = {"name": "docker-1", "kind": "docker", "url": REFUSING}
    response = client.post("/projects/alpha/hosts/new/", form, HTTP_HX_REQUEST="true")
    text = page_text(response)
    # A remote fault answers 4xx so that htmx shows the dialog again with the message on the URL field.
    assert response.status_code == 400 and "refused" in field_error(text, "url")
    assert not ContainerHost.objects.exists()


def test_add_dialog_names_a_taken_name_on_the_name_field(client, role_users, host) -> None:
    client = as_user(client, role_users, "project_admin")
    form = {"name": "docker-1", "kind": "docker", "url": "http://127.0.0.1:9"}
    response = client.post("/projects/alpha/hosts/new/", form, HTTP_HX_REQUEST="true")
    text = page_text(response)
    assert response.status_code == 409 and field_error(text, "name") == "This name is taken."
    assert "host &#x27;docker-1&#x27; already exists in project &#x27;alpha&#x27;" in text


def test_host_page_shows_facts_and_containers(client, role_users, host) -> None:
    make_container(host, "web", provisioned=True, state=ContainerState.RUNNING)
    make_container(host, "stray", provisioned=False, state=ContainerState.EXITED)
    make_container(host, "old", state=ContainerState.REMOVED)
    response = as_user(client, role_users, "viewer").get(f"/hosts/{host.pk}/")
    text = page_text(response)
    assert response.status_code == 200 and "20.10.24" in text and "web" in text
    assert "created outside the portal" in text and "1 container gone from the host is not listed." in text
    assert "Disable" not in text and "Remove" not in text


def test_host_page_is_hidden_from_other_projects(client, role_users, host) -> None:
    assert as_user(client, role_users, "other_project_admin").get(f"/hosts/{host.pk}/").status_code == 404


def test_project_admin_disables_and_enables_a_host(client, role_users, host) -> None:
    client = as_user(client, role_users, "project_admin")
    assert "Disable" in page_text(client.get(f"/hosts/{host.pk}/"))
    client.post(f"/hosts/{host.pk}/toggle/", {"enabled": "false"})
    host.refresh_from_db()
    assert host.state == HostState.DISABLED
    # Enabling connects again: nothing answers, so the host comes back UNREACHABLE with the reason.
    response = client.post(f"/hosts/{host.pk}/toggle/", {"enabled": "true"}, follow=True)
    host.refresh_from_db()
    assert host.state == HostState.UNREACHABLE and "refused" in host.last_error
    assert "Host &#x27;docker-1&#x27; enabled." in page_text(response)


def test_viewer_cannot_disable_a_host(client, role_users, host) -> None:
    assert (
        as_user(client, role_users, "viewer").post(f"/hosts/{host.pk}/toggle/", {"enabled": "false"}).status_code == 403
    )
    host.refresh_from_db()
    assert host.state == HostState.ON


def test_removing_a_host_says_its_containers_are_not_touched(client, role_users, host) -> None:
    make_container(host, "web")
    client = as_user(client, role_users, "project_admin")
    dialog = page_text(client.get(f"/hosts/{host.pk}/remove/", HTTP_HX_REQUEST="true"))
    assert "The containers on the host are not touched" in dialog
    removed = client.post(f"/hosts/{host.pk}/remove/", HTTP_HX_REQUEST="true")
    assert removed.status_code == 204 and removed["HX-Redirect"] == "/hosts/?project=alpha"
    assert not ContainerHost.objects.exists() and not Container.objects.exists()


def test_developer_cannot_remove_a_host(client, role_users, host) -> None:
    assert as_user(client, role_users, "developer").post(f"/hosts/{host.pk}/remove/").status_code == 403
    assert ContainerHost.objects.filter(pk=host.pk).exists()


# --- Containers -------------------------------------------------------------------------------------


def test_containers_page_lists_the_project_containers(client, role_users, host, beta) -> None:
    ports = [{"ip": "0.0.0.0", "private": 80, "public": 8080, "protocol": "tcp"}]
    make_container(host, "web", provisioned=True, state=ContainerState.RUNNING, ports=ports, status="Up 2 minutes")
    make_container(host, "stray", provisioned=False, state=ContainerState.EXITED)
    make_container(host, "old", state=ContainerState.REMOVED)
    make_container(make_host(beta, "beta-host", "http://127.0.0.1:2"), "secret")
    response = as_user(client, role_users, "viewer").get("/containers/")
    text = page_text(response)
    assert response.status_code == 200
    assert 'data-container="web"' in text and "0.0.0.0:8080&rarr;80/tcp" in text and "Up 2 minutes" in text
    assert 'data-container="stray"' in text and "created outside the portal" in text
    assert 'data-container="old"' not in text and 'data-container="secret"' not in text
    assert "+ Container" not in text
    assert 'data-container="old"' in page_text(client.get("/containers/?removed=1"))


def test_containers_filter(client, role_users, host) -> None:
    make_container(host, "web")
    make_container(host, "db", image="postgres:16")
    region = page_text(as_user(client, role_users, "viewer").get("/containers/?q=postgres", HTTP_HX_REQUEST="true"))
    assert 'data-container="db"' in region and 'data-container="web"' not in region


def test_developers_get_the_provision_dialog_with_the_hosts(client, role_users, host, alpha) -> None:
    make_host(alpha, "resting", "http://127.0.0.1:3", state=HostState.DISABLED)
    client = as_user(client, role_users, "developer")
    assert "+ Container" in page_text(client.get("/containers/"))
    text = page_text(client.get("/projects/alpha/containers/new/?image=alpha/app:1"))
    assert "Any ON host (least loaded)" in text and "docker-1" in text and "resting" not in text
    assert 'value="alpha/app:1"' in text
    assert as_user(client, role_users, "viewer").get("/projects/alpha/containers/new/").status_code == 403


def test_provisioning_from_an_unlisted_registry_is_refused_in_the_dialog(client, role_users, host) -> None:
    client = as_user(client, role_users, "developer")
    form = {"image": "quay.io/team/app:1", "restart_policy": "no"}
    response = client.post("/projects/alpha/containers/new/", form, HTTP_HX_REQUEST="true")
    text = page_text(response)
    assert response.status_code in (400, 403) and "quay.io" in field_error(text, "image")
    assert not Container.objects.exists()


def test_a_bad_port_binding_is_named_in_the_dialog(client, role_users, host) -> None:
    client = as_user(client, role_users, "developer")
    form = {"image": "alpha/app:1", "ports": "8080:80\nhttp:80", "restart_policy": "no"}
    text = page_text(client.post("/projects/alpha/containers/new/", form, HTTP_HX_REQUEST="true"))
    assert "port binding &#x27;http:80&#x27;" in field_error(text, "ports")


def test_container_page_shows_a_host_failure_as_a_message(client, role_users, host) -> None:
    container = make_container(host, "web", provisioned=True, state=ContainerState.RUNNING)
    client = as_user(client, role_users, "developer")
    response = client.get(f"/containers/{container.pk}/")
    text = page_text(response)
    assert response.status_code == 200 and "refused" in text
    # A running container offers Stop, Restart and Remove; Start only once it stopped.
    assert ">Stop</button>" in text and ">Remove</button>" in text and ">Start</button>" not in text
    stats = client.get(f"/containers/{container.pk}/stats/", HTTP_HX_REQUEST="true")
    assert stats.status_code == 200 and "refused" in page_text(stats) and 'hx-trigger="every 3s"' in page_text(stats)
    logs = client.get(f"/containers/{container.pk}/logs/", HTTP_HX_REQUEST="true")
    assert logs.status_code == 200 and "refused" in page_text(logs)


def test_viewers_see_no_container_actions(client, role_users, host) -> None:
    container = make_container(host, "web", provisioned=True, state=ContainerState.RUNNING)
    client = as_user(client, role_users, "viewer")
    assert "Restart" not in page_text(client.get(f"/containers/{container.pk}/"))
    assert client.post(f"/containers/{container.pk}/stop/").status_code == 403


def test_a_removed_container_has_no_live_sections(client, role_users, host) -> None:
    container = make_container(host, "old", state=ContainerState.REMOVED)
    text = page_text(as_user(client, role_users, "developer").get(f"/containers/{container.pk}/"))
    assert "gone from its host" in text and "Live stats" not in text and "Restart" not in text


def test_container_pages_are_hidden_from_other_projects(client, role_users, host) -> None:
    container = make_container(host, "web")
    client = as_user(client, role_users, "other_project_admin")
    for path in ("", "logs/", "stats/"):
        assert client.get(f"/containers/{container.pk}/{path}").status_code == 404


def test_an_action_starts_a_job_shown_on_the_container_page(client, role_users, host, settings) -> None:
    container = make_container(host, "web", provisioned=True, state=ContainerState.RUNNING)
    client = as_user(client, role_users, "developer")
    started = client.post(f"/containers/{container.pk}/stop/", HTTP_HX_REQUEST="true")
    assert started.status_code == 204
    page = page_text(client.get(started["HX-Redirect"]))
    assert "stop container #" in page and "Stop of &#x27;web&#x27; started" in page


def test_a_job_panel_is_shown_to_the_members_of_its_project_only(client, role_users, host) -> None:
    job = create_job(Actor(role_users["developer"]), "stop container", "alpha/web")
    mine = as_user(client, role_users, "viewer").get(f"/containers/jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    assert mine.status_code == 200 and 'hx-trigger="every 2s"' in page_text(mine)
    assert as_user(client, role_users, "other_project_admin").get(f"/containers/jobs/{job.pk}/").status_code == 404
    other = create_job(Actor(role_users["portal_admin"]), "registry_gc", "registry")
    assert as_user(client, role_users, "portal_admin").get(f"/containers/jobs/{other.pk}/").status_code == 404


def test_a_finished_job_tells_the_page_to_refresh(client, role_users, host) -> None:
    job = create_job(Actor(role_users["developer"]), "stop container", "alpha/web")
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error="the host refused")
    panel = as_user(client, role_users, "developer").get(f"/containers/jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    assert panel["HX-Trigger"] == "container-job-finished"
    assert "the host refused" in page_text(panel) and "every 2s" not in page_text(panel)


def test_check_now_records_and_shows_why_a_host_is_unreachable(client, role_users, host) -> None:
    client = as_user(client, role_users, "project_admin")
    response = client.post(f"/hosts/{host.pk}/check/", follow=True)
    host.refresh_from_db()
    assert response.status_code == 200 and host.state == HostState.UNREACHABLE
    assert "refused" in page_text(response) and "UNREACHABLE" in page_text(response)
    assert as_user(client, role_users, "viewer").post(f"/hosts/{host.pk}/check/").status_code == 403


# --- every page under every role ----------------------------------------------------------------------

LOGIN = 302
# anonymous, viewer, developer, project_admin, other_project_admin, portal_admin (as in tests/test_api_permissions.py)
PAGES = [
    ("get", "/hosts/", (LOGIN, 200, 200, 200, 200, 200)),
    ("get", "/containers/", (LOGIN, 200, 200, 200, 200, 200)),
    ("get", "/projects/alpha/infrastructure/", (LOGIN, 200, 200, 200, 404, 200)),
    ("get", "/projects/alpha/hosts/new/", (LOGIN, 403, 403, 200, 404, 200)),
    ("get", "/hosts/{host}/", (LOGIN, 200, 200, 200, 404, 200)),
    ("post", "/hosts/{host}/toggle/", (LOGIN, 403, 403, 302, 404, 302)),
    ("post", "/hosts/{host}/check/", (LOGIN, 403, 403, 302, 404, 302)),
    ("get", "/hosts/{host}/remove/", (LOGIN, 403, 403, 200, 404, 200)),
    ("post", "/hosts/{host}/remove/", (LOGIN, 403, 403, 302, 404, 302)),
    ("get", "/projects/alpha/containers/new/", (LOGIN, 403, 200, 200, 404, 200)),
    ("get", "/containers/{container}/", (LOGIN, 200, 200, 200, 404, 200)),
    ("get", "/containers/{container}/logs/", (LOGIN, 200, 200, 200, 404, 200)),
    ("get", "/containers/{container}/stats/", (LOGIN, 200, 200, 200, 404, 200)),
    ("post", "/containers/{container}/stop/", (LOGIN, 403, 302, 302, 404, 302)),
    ("get", "/containers/jobs/{job}/", (LOGIN, 200, 200, 200, 404, 200)),
]


@pytest.mark.parametrize(("method", "path", "statuses"), PAGES, ids=[f"{m} {p}" for m, p, _ in PAGES])
@pytest.mark.parametrize("role", ROLES)
def test_page_status_per_role(client, role_users, host, method, path, statuses, role) -> None:
    container = make_container(host, "web", provisioned=True, state=ContainerState.RUNNING)
    job = create_job(Actor(role_users["developer"]), "stop container", "alpha/web")
    if role_users[role] is not None:
        as_user(client, role_users, role)
    url = path.format(host=host.pk, container=container.pk, job=job.pk)
    response = getattr(client, method)(url, {"enabled": "false"} if method == "post" else None)
    assert response.status_code == statuses[ROLES.index(role)]


@pytest.mark.parametrize(("role", "offered"), [("viewer", False), ("developer", True), ("project_admin", True)])
def test_repository_tags_offer_provisioning_to_those_who_may(client, role_users, alpha, role, offered) -> None:
    from registries.models import Repository, Tag

    repository = Repository.objects.create(project=alpha, name="alpha/app")
    Tag.objects.create(repository=repository, name="1.0", digest="sha256:" + "a" * 64, size=1, pushed_by="dev")
    page = as_user(client, role_users, role).get("/projects/alpha/repositories/alpha/app/")
    assert page.status_code == 200
    link = re.search(r'href="(/projects/alpha/containers/new/\?image=[^"]+)"', page.content.decode())
    assert (link is not None) == offered
    if offered:
        dialog = client.get(link.group(1).replace("&amp;", "&"))
        assert 'value="testserver/alpha/app:1.0"' in dialog.content.decode()


def test_library_search_tags_offer_provisioning(client, role_users, alpha) -> None:
    from registries.models import Repository, Tag

    repository = Repository.objects.create(project=alpha, name="alpha/app")
    Tag.objects.create(repository=repository, name="2.0", digest="sha256:" + "b" * 64, size=1, pushed_by="dev")
    dialog = as_user(client, role_users, "developer").get("/library/search/alpha/integrated/alpha/app/tags/")
    assert dialog.status_code == 200
    assert "/projects/alpha/containers/new/?image=testserver/alpha/app:2.0" in dialog.content.decode()


def test_a_host_page_lists_its_containers_a_page_at_a_time(
    client: Client, role_users: dict[str, User | None], host: ContainerHost
) -> None:
    for index in range(45):
        make_container(host, f"c{index:02d}")
    as_user(client, role_users, "viewer")

    first = page_text(client.get(f"/hosts/{host.pk}/"))
    assert "c00" in first and "c19" in first and "c20" not in first
    assert "1 - 20 of 45" in first and "Page 1 of 3" in first

    last = client.get(f"/hosts/{host.pk}/?page=3", headers={"HX-Request": "true"})
    text = page_text(last)
    assert "c40" in text and "c44" in text and "c39" not in text
    assert "<html" not in last.content.decode(), "htmx paging answers the table region only"
