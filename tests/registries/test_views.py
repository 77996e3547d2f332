"""The registry pages as each role sees them: Internal Repositories, a repository's tags, the library, GC."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.urls import reverse

from portal.core.errors import RemoteUnreachable
from portal.core.models import AuditEvent, Job, JobState, User
from projects.models import Project
from registries import maintenance, services
from registries.models import GcSchedule, Repository, Tag
from tests.conftest import logged_in, page_text
from tests.registries.test_api import FakeRegistry

pytestmark = pytest.mark.django_db
DIGEST = "sha256:" + "ab12cd34ef56" + "0" * 52
OTHER_DIGEST = "sha256:" + "ff" * 32


@pytest.fixture
def app(alpha: Project) -> Repository:
    """alpha/app with two tags on one digest and one on another, pulled 7 times."""
    repository = Repository.objects.create(project=alpha, name="alpha/app", pull_count=7)
    for name, digest in (("1.0", DIGEST), ("latest", DIGEST), ("2.0", OTHER_DIGEST)):
        Tag.objects.create(repository=repository, name=name, digest=digest, size=3 * 1024 * 1024, pushed_by="dev")
    return repository


@pytest.fixture
def beta_repository(beta: Project) -> Repository:
    """beta/secret with one tag."""
    repository = Repository.objects.create(project=beta, name="beta/secret")
    Tag.objects.create(repository=repository, name="1", digest=DIGEST)
    return repository


@pytest.fixture
def registry_down(settings) -> None:
    """The registry does not answer, so every deletion the service tries is refused."""
    settings.REGISTRY_URL = "http://127.0.0.1:1"


def as_role(client: Client, role_users: dict[str, User | None], role: str) -> Client:
    """The test client logged in as the role's user."""
    return logged_in(client, role_users[role])


def tab_url(project: str = "alpha") -> str:
    return reverse("project-repositories", args=[project])


def detail_url(repository: str = "app", project: str = "alpha") -> str:
    return reverse("repository-detail", args=[project, repository])


# The Internal Repositories tab.


def test_tab_lists_repositories_with_tag_and_pull_counts(client, role_users, app):
    response = as_role(client, role_users, "viewer").get(tab_url())
    text = page_text(response)
    assert response.status_code == 200
    assert "Internal Repositories" in text
    assert 'data-repository="alpha/app"' in text
    assert '<td class="left" data-column="tags">3</td>' in text
    assert '<td class="left" data-column="pulls">7</td>' in text
    assert detail_url() in text


def test_tab_of_invisible_project_is_404(client, role_users, app):
    assert as_role(client, role_users, "other_project_admin").get(tab_url()).status_code == 404


def test_tab_search_filters_and_htmx_gets_only_the_table(client, role_users, app, alpha):
    Repository.objects.create(project=alpha, name="alpha/other")
    response = as_role(client, role_users, "viewer").get(tab_url(), {"q": "oth"}, HTTP_HX_REQUEST="true")
    text = page_text(response)
    assert text.lstrip().startswith('<div id="repository-table"')
    assert 'data-repository="alpha/other"' in text and 'data-repository="alpha/app"' not in text


def test_tab_polls_for_new_pushes_while_nothing_is_selected(client, role_users, app):
    text = page_text(as_role(client, role_users, "viewer").get(tab_url()))
    # The pause while a row is selected is wharf.js's (htmx:beforeRequest): a trigger filter would need eval.
    assert 'hx-trigger="every 3s" data-pause-while-checked="repositories"' in text


def test_tab_paginates(client, role_users, alpha):
    Repository.objects.bulk_create(Repository(project=alpha, name=f"alpha/r{n:02d}") for n in range(25))
    text = page_text(as_role(client, role_users, "viewer").get(tab_url(), {"page": 2}))
    assert 'data-repository="alpha/r24"' in text and 'data-repository="alpha/r00"' not in text
    assert "Page 2 of 2" in text


def test_viewer_and_developer_see_no_delete_controls(client, role_users, app):
    for role in ("viewer", "developer"):
        client = as_role(client, role_users, role)
        assert reverse("repository-delete", args=["alpha"]) not in page_text(client.get(tab_url()))
        assert reverse("tag-delete", args=["alpha", "app"]) not in page_text(client.get(detail_url()))


def test_project_admin_sees_delete_controls(client, role_users, app):
    client = as_role(client, role_users, "project_admin")
    assert reverse("repository-delete", args=["alpha"]) in page_text(client.get(tab_url()))
    assert reverse("tag-delete", args=["alpha", "app"]) in page_text(client.get(detail_url()))


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_non_admins_cannot_delete_repositories_or_tags(client, role_users, app, role):
    client = as_role(client, role_users, role)
    assert client.post(reverse("repository-delete", args=["alpha"]), {"repositories": "alpha/app"}).status_code == 403
    assert client.get(reverse("repository-delete", args=["alpha"]), {"repositories": "alpha/app"}).status_code == 403
    assert client.post(reverse("tag-delete", args=["alpha", "app"]), {"tag": "1.0"}).status_code == 403
    assert Tag.objects.count() == 3


def test_outsider_deleting_gets_404(client, role_users, app):
    client = as_role(client, role_users, "other_project_admin")
    assert client.post(reverse("repository-delete", args=["alpha"]), {"repositories": "alpha/app"}).status_code == 404
    assert client.post(reverse("tag-delete", args=["alpha", "app"]), {"tag": "1.0"}).status_code == 404


def test_delete_dialog_lists_the_selected_repositories(client, role_users, app):
    url = reverse("repository-delete", args=["alpha"])
    response = as_role(client, role_users, "project_admin").get(url, {"repositories": "alpha/app"}, HTTP_HX_REQUEST="1")
    text = page_text(response)
    assert response.status_code == 200
    assert "Delete 1 repository of project alpha" in text and "<li>alpha/app</li>" in text
    assert 'type="hidden" name="repositories" value="alpha/app"' in text


def test_delete_without_selection_says_so(client, role_users, app):
    response = as_role(client, role_users, "project_admin").get(
        reverse("repository-delete", args=["alpha"]), follow=True
    )
    assert "Select at least one repository first." in page_text(response)


def test_repository_of_another_project_cannot_be_selected(client, role_users, app, beta_repository):
    url = reverse("repository-delete", args=["alpha"])
    response = as_role(client, role_users, "portal_admin").post(url, {"repositories": "beta/secret"})
    assert response.status_code == 400
    assert Repository.objects.filter(name="beta/secret").exists()


def test_refused_repository_deletion_is_shown_in_the_dialog(client, role_users, app, registry_down):
    url = reverse("repository-delete", args=["alpha"])
    response = as_role(client, role_users, "project_admin").post(url, {"repositories": "alpha/app"})
    assert response.status_code == 502
    assert "did not answer" in page_text(response)
    assert Repository.objects.filter(name="alpha/app").exists()


def test_refused_bulk_repository_deletion_names_each_in_the_dialog(client, role_users, app, registry_down):
    Repository.objects.create(project=app.project, name="alpha/other")
    url = reverse("repository-delete", args=["alpha"])
    response = as_role(client, role_users, "project_admin").post(url, {"repositories": ["alpha/app", "alpha/other"]})
    assert response.status_code == 502
    text = page_text(response)
    assert "alpha/app: " in text and "alpha/other: " in text
    assert 'type="hidden" name="repositories" value="alpha/other"' in text
    assert Repository.objects.filter(project=app.project).count() == 2


class RefusingRegistry(FakeRegistry):
    """A registry that does not answer for one repository (a fault of one item among several)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def tags(self, repository: str) -> list[str]:
        if repository == self.refused:
            raise RemoteUnreachable("The registry did not answer: timed out.")
        return super().tags(repository)


def test_bulk_repository_deletion_deletes_the_others_and_says_which_was_refused(
    client, role_users, app, monkeypatch
) -> None:
    for name in ("alpha/broken", "alpha/zeta"):
        Repository.objects.create(project=app.project, name=name)
    monkeypatch.setattr(services, "RegistryClient", lambda: RefusingRegistry("alpha/broken"))
    url = reverse("repository-delete", args=["alpha"])
    selection = {"repositories": ["alpha/app", "alpha/broken", "alpha/zeta"]}
    response = as_role(client, role_users, "project_admin").post(url, selection, follow=True)
    text = page_text(response)
    assert "Deleted alpha/app, alpha/zeta." in text
    assert "Not deleted: alpha/broken: The registry did not answer: timed out." in text
    assert list(Repository.objects.filter(project=app.project).values_list("name", flat=True)) == ["alpha/broken"]
    deleted = AuditEvent.objects.filter(action="delete", resource_type="repository")
    assert sorted(deleted.values_list("resource_name", flat=True)) == ["alpha/app", "alpha/zeta"]


def test_repositories_sort_by_each_column_and_keep_the_search(client, role_users, alpha):
    for name, pulls, tags in (("alpha/b", 5, 3), ("alpha/a", 1, 2), ("alpha/c", 9, 1)):
        repository = Repository.objects.create(project=alpha, name=name, pull_count=pulls)
        for n in range(tags):
            Tag.objects.create(repository=repository, name=f"t{n}", digest=DIGEST)
    viewer = as_role(client, role_users, "viewer")

    def order(url: str = "", **query: str) -> list[str]:
        """The repositories in the order the page lists them."""
        text = page_text(viewer.get(url or tab_url(), query))
        return sorted(("alpha/a", "alpha/b", "alpha/c"), key=lambda name: text.index(f'data-repository="{name}"'))

    assert order() == ["alpha/a", "alpha/b", "alpha/c"]
    assert order(sort="-pulls") == ["alpha/c", "alpha/b", "alpha/a"]
    assert order(sort="tags") == ["alpha/c", "alpha/a", "alpha/b"]
    assert order(sort="-name", q="alpha/") == ["alpha/c", "alpha/b", "alpha/a"]
    assert order(sort="size") == ["alpha/a", "alpha/b", "alpha/c"]  # a key the table does not offer: default order
    assert order(reverse("library-repositories"), sort="-tags") == ["alpha/b", "alpha/a", "alpha/c"]
    assert 'aria-sort="descending"' in page_text(viewer.get(tab_url(), {"sort": "-pulls"}))


def test_repository_deletion_is_refused_while_read_only(client, role_users, app):
    maintenance.enter_read_only()
    try:
        url = reverse("repository-delete", args=["alpha"])
        response = as_role(client, role_users, "project_admin").post(url, {"repositories": "alpha/app"})
    finally:
        maintenance.leave_read_only()
    assert response.status_code == 409
    assert "read-only for maintenance" in page_text(response)


# A repository's page.


def test_repository_page_shows_tags_digest_size_and_pull_command(client, role_users, app):
    text = page_text(as_role(client, role_users, "viewer").get(detail_url()))
    assert 'data-tag="1.0"' in text and 'data-tag="latest"' in text and 'data-tag="2.0"' in text
    assert f'<code title="{DIGEST}">ab12cd34ef56</code>' in text
    assert f'data-copy="{DIGEST}"' in text
    assert "3.0\xa0MB" in text
    assert "<code>docker pull testserver/alpha/app:1.0</code>" in text


def test_repository_page_404s(client, role_users, app):
    assert as_role(client, role_users, "viewer").get(detail_url("missing")).status_code == 404
    assert as_role(client, role_users, "other_project_admin").get(detail_url()).status_code == 404


def test_repository_names_with_slashes_open(client, role_users, alpha):
    repository = Repository.objects.create(project=alpha, name="alpha/team/tool")
    Tag.objects.create(repository=repository, name="v1", digest=DIGEST)
    text = page_text(as_role(client, role_users, "viewer").get(detail_url("team/tool")))
    assert "docker pull testserver/alpha/team/tool:v1" in text


def test_tag_delete_dialog_says_sibling_tags_are_kept(client, role_users, app):
    url = reverse("tag-delete", args=["alpha", "app"])
    text = page_text(as_role(client, role_users, "project_admin").get(url, {"tag": "1.0"}, HTTP_HX_REQUEST="1"))
    assert "Delete tag <strong>1.0</strong> of alpha/app" in text
    assert "Other tags on the same digest are kept: <strong>latest</strong>." in text


def test_tag_delete_dialog_lists_every_tag_ticked_in_the_table(client, role_users, app):
    url = reverse("tag-delete", args=["alpha", "app"])
    admin = as_role(client, role_users, "project_admin")
    text = page_text(admin.get(url, {"tag": ["1.0", "2.0"]}, HTTP_HX_REQUEST="1"))
    assert "Delete these 2 tags of alpha/app?" in text
    assert 'data-tag="1.0"' in text and 'data-tag="2.0"' in text
    # 1.0's sibling "latest" is not being deleted, so the dialog says it stays.
    assert "kept on the same digest: latest" in text


def test_tag_delete_without_a_selection_says_select_at_least_one(client, role_users, app):
    url = reverse("tag-delete", args=["alpha", "app"])
    admin = as_role(client, role_users, "project_admin")
    assert "Select at least one tag to delete." in page_text(admin.get(url, follow=True))
    response = admin.post(url, {})
    assert response.status_code == 400
    assert "Select at least one tag to delete." in page_text(response)


def test_tag_delete_of_a_tag_not_in_the_repository_is_refused(client, role_users, app, beta_repository):
    url = reverse("tag-delete", args=["alpha", "app"])
    response = as_role(client, role_users, "project_admin").post(url, {"tag": ["1.0", "nope"]})
    assert response.status_code == 400
    assert Tag.objects.filter(repository=app).count() == 3


def test_refused_bulk_tag_deletion_names_each_tag_in_the_dialog(client, role_users, app, registry_down):
    url = reverse("tag-delete", args=["alpha", "app"])
    response = as_role(client, role_users, "project_admin").post(url, {"tag": ["1.0", "2.0"]})
    assert response.status_code == 502
    text = page_text(response)
    assert "alpha/app:1.0: " in text and "alpha/app:2.0: " in text
    assert Tag.objects.filter(repository=app).count() == 3


def test_tag_delete_dialog_of_the_last_tag_says_the_repository_goes(client, role_users, alpha):
    repository = Repository.objects.create(project=alpha, name="alpha/solo")
    Tag.objects.create(repository=repository, name="only", digest=DIGEST)
    url = reverse("tag-delete", args=["alpha", "solo"])
    text = page_text(as_role(client, role_users, "project_admin").get(url, {"tag": "only"}, HTTP_HX_REQUEST="1"))
    assert "last tag: the repository is deleted with it" in text


def test_refused_tag_deletion_is_shown_in_the_dialog(client, role_users, app, registry_down):
    url = reverse("tag-delete", args=["alpha", "app"])
    response = as_role(client, role_users, "project_admin").post(url, {"tag": "1.0"})
    assert response.status_code == 502
    assert "did not answer" in page_text(response)
    assert Tag.objects.filter(name="1.0").exists()


# Library > Built-In Repositories.


def test_library_lists_only_repositories_the_user_may_pull(client, role_users, app, beta_repository):
    text = page_text(as_role(client, role_users, "viewer").get(reverse("library-repositories")))
    assert "Built-In Repositories" in text
    assert 'data-repository="alpha/app"' in text and 'data-repository="beta/secret"' not in text
    assert detail_url() in text


def test_library_shows_public_projects_and_searches(client, role_users, app, beta_repository, beta):
    beta.public = True
    beta.save()
    client = as_role(client, role_users, "viewer")
    text = page_text(client.get(reverse("library-repositories"), {"q": "secr"}))
    assert 'data-repository="beta/secret"' in text and 'data-repository="alpha/app"' not in text


def test_portal_admin_library_lists_everything(client, role_users, app, beta_repository):
    text = page_text(as_role(client, role_users, "portal_admin").get(reverse("library-repositories")))
    assert 'data-repository="alpha/app"' in text and 'data-repository="beta/secret"' in text


def test_navigation_links_the_library(client, role_users):
    text = page_text(as_role(client, role_users, "viewer").get(reverse("home")))
    assert reverse("library-repositories") in text and "Built-In Repositories" in text


# Administration > Configuration > Garbage Collection.


def test_configuration_shows_gc_section_with_runs_and_freed_space(client, role_users):
    job = Job.objects.create(kind=services.GARBAGE_COLLECTION, state=JobState.SUCCEEDED, created_by="root")
    job.log_lines.create(text="freed 2097152 bytes: 4 blobs deleted, 1 untagged manifests; ...")
    text = page_text(as_role(client, role_users, "portal_admin").get(reverse("configuration")))
    assert "Garbage Collection" in text and "Run now" in text and "Reconcile now" in text
    assert "2.0\xa0MB" in text and '<td class="left">4</td>' in text


def test_run_now_starts_garbage_collection(client, role_users):
    response = as_role(client, role_users, "portal_admin").post(reverse("gc-run"), follow=True)
    assert Job.objects.filter(kind=services.GARBAGE_COLLECTION, state=JobState.PENDING).count() == 1
    assert "Garbage collection started" in page_text(response)


def test_second_run_is_refused_while_one_runs(client, role_users):
    # As create_job writes it: exclusive, so the database refuses a second active one.
    Job.objects.create(kind=services.GARBAGE_COLLECTION, target="registry", exclusive=True, state=JobState.RUNNING)
    response = as_role(client, role_users, "portal_admin").post(reverse("gc-run"), follow=True)
    assert "garbage collection is already running" in page_text(response)
    assert Job.objects.filter(kind=services.GARBAGE_COLLECTION).count() == 1


def test_schedule_is_saved_through_the_service(client, role_users):
    data = {"gc-frequency": "daily", "gc-time": "03:30"}
    response = as_role(client, role_users, "portal_admin").post(reverse("gc-schedule"), data, follow=True)
    schedule = GcSchedule.load()
    assert (schedule.frequency, schedule.time) == ("daily", datetime.time(3, 30))
    assert "schedule saved: daily at 03:30" in page_text(response)


def test_invalid_schedule_is_refused(client, role_users):
    data = {"gc-frequency": "weekly", "gc-time": "03:30"}
    response = as_role(client, role_users, "portal_admin").post(reverse("gc-schedule"), data, follow=True)
    assert "weekly is not one of the available choices" in page_text(response)
    assert GcSchedule.load().frequency == "off"


def test_reconcile_now_starts_a_job(client, role_users):
    as_role(client, role_users, "portal_admin").post(reverse("registry-reconcile"))
    assert Job.objects.filter(kind=services.RECONCILE).count() == 1


@pytest.mark.parametrize("url_name", ["gc-run", "gc-schedule", "registry-reconcile"])
def test_only_portal_admins_run_maintenance(client, role_users, url_name):
    response = as_role(client, role_users, "project_admin").post(reverse(url_name), {"gc-frequency": "daily"})
    assert response.status_code == 403
    assert not Job.objects.exists() and GcSchedule.load().frequency == "off"


def test_gc_job_row_is_for_portal_admins(client, role_users):
    job = Job.objects.create(kind=services.GARBAGE_COLLECTION, state=JobState.RUNNING)
    assert as_role(client, role_users, "project_admin").get(reverse("gc-job-row", args=[job.pk])).status_code == 403
    text = page_text(as_role(client, role_users, "portal_admin").get(reverse("gc-job-row", args=[job.pk])))
    assert f'id="gc-job-{job.pk}"' in text and 'hx-trigger="every 2s"' in text
