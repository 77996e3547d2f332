"""Executions for real, in this process: the integrated registry (token auth) to a plain distribution registry
that asks for a login, through the rule's parent job, its child jobs and the copier.

The parent job runs its children in threads with their own database connections, so these tests commit
(transaction=True). What the user checks is what the endpoint holds: tags, digests, and what it was sent (its
own request log).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.core.audit import Actor
from portal.core.jobs import run_job
from portal.core.models import Job, JobState, User
from projects.models import Project
from registries import events
from registries import services as registry_services
from registries.client import RegistryClient
from registries.client_auth import ChallengeAuth, Login
from registries.models import Repository, Tag
from replication import services
from replication.models import Endpoint, EndpointKind, Execution, Task, Trigger
from tests.integration.images import Image, push_image
from tests.integration.registry import Registry, point_portal_at
from tests.integration.registry_fixtures import PASSWORD, USERNAME, basic_registry_fixture, quiet_registry  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def wired(settings: Any, registry: Registry) -> Registry:
    """The portal's integrated registry is the module's registry; executions run their children in threads."""
    settings.REPLICATION_CONCURRENCY = 2
    return point_portal_at(settings, registry)


@pytest.fixture
def admin(portal_admin: User) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


@pytest.fixture
def web(db: Any) -> Project:
    return Project.objects.create(name="web")


def pushed(registry: Registry, project: Project, repository: str, tags: list[str], layer_bytes: int = 4096) -> Image:
    """An image pushed to the integrated registry, with the rows the event receiver would write."""
    image = push_image(registry.url, repository, tags, layer_bytes)
    row, _ = Repository.objects.get_or_create(project=project, name=repository)
    for tag in tags:
        Tag.objects.update_or_create(
            repository=row, name=tag, defaults={"digest": image.digest, "size": image.size, "media_type": ""}
        )
    return image


@pytest.fixture
def endpoint(admin: Actor, basic_registry: Registry) -> Endpoint:
    return services.create_endpoint(
        admin, "dr-site", basic_registry.url, EndpointKind.REGISTRY, username=USERNAME, password=PASSWORD
    )


@pytest.fixture
def remote(basic_registry: Registry) -> RegistryClient:
    """The endpoint's registry as a user of it sees it."""
    return RegistryClient(basic_registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))


def run(execution: Execution) -> Execution:
    """Run the execution's parent job here, as a worker would, and read it back."""
    run_job(execution.job_id)
    return Execution.objects.select_related("job").get(pk=execution.pk)


def blob_uploads(registry: Registry) -> int:
    """How many blob uploads the endpoint's registry has finished so far (from its request log)."""
    return len(re.findall(r"PUT /v2/[^ ]+/blobs/uploads/[^ ]*digest=", registry.log_path.read_text(errors="replace")))


def test_an_enabled_rule_replicates_what_matches_and_a_rerun_sends_no_blob(
    wired: Registry, web: Project, admin: Actor, endpoint: Endpoint, remote: RegistryClient, basic_registry: Registry
) -> None:
    app = pushed(wired, web, "web/app", ["1.0", "latest"])
    api = pushed(wired, web, "web/api/server", ["2.0"])
    pushed(wired, web, "web/skipped", ["1.0"])

    rule = services.create_rule(
        admin, "nightly-web", web, endpoint, repository_filter="[ap]*", destination_project="dr-web", enabled=True
    )
    execution = run(Execution.objects.get(rule=rule))

    assert execution.job.state == JobState.SUCCEEDED, execution.job.log
    assert execution.cause == Execution.Cause.ENABLED
    tasks = {task.repository: task for task in execution.tasks.select_related("job")}
    assert set(tasks) == {"web/app", "web/api/server"}
    assert all(task.job.state == JobState.SUCCEEDED for task in tasks.values())
    assert remote.head_manifest("dr-web/app", "1.0").digest == app.digest
    assert remote.head_manifest("dr-web/app", "latest").digest == app.digest
    assert remote.head_manifest("dr-web/api/server", "2.0").digest == api.digest
    assert remote.head_manifest("dr-web/skipped", "1.0") is None
    assert tasks["web/app"].tags_copied == 2 and tasks["web/app"].blobs_copied == 2
    assert tasks["web/app"].bytes_copied > 4096
    # Two tags on one digest: the second counts as skipped, and the progress ends at the images' sizes.
    assert tasks["web/app"].job.done_bytes == tasks["web/app"].job.total_bytes == 2 * app.size
    assert execution.job.done_bytes == execution.job.total_bytes
    assert execution.job.done_units == execution.job.total_units == 2
    assert "2 tasks succeeded: 3 tags copied" in execution.job.log
    sent = blob_uploads(basic_registry)
    assert sent >= 4

    again = run(services.run_rule(admin, rule))

    assert again.job.state == JobState.SUCCEEDED, again.job.log
    assert blob_uploads(basic_registry) == sent, "a rerun with no change sent blobs"
    rerun = {task.repository: task for task in again.tasks.all()}
    assert rerun["web/app"].tags_skipped == 2 and rerun["web/app"].bytes_copied == 0
    assert rerun["web/api/server"].blobs_copied == 0


def test_tag_filter_and_later_pushes_replicate_incrementally(
    wired: Registry, web: Project, admin: Actor, endpoint: Endpoint, remote: RegistryClient, basic_registry: Registry
) -> None:
    pushed(wired, web, "web/lib", ["1.0", "dev"])
    rule = services.create_rule(admin, "releases", web, endpoint, tag_filter="1.*", enabled=True)
    first = run(Execution.objects.get(rule=rule))
    assert first.job.state == JobState.SUCCEEDED, first.job.log
    assert remote.tags("web/lib") == ["1.0"]

    sent = blob_uploads(basic_registry)
    newer = pushed(wired, web, "web/lib", ["1.1"], layer_bytes=8192)
    second = run(services.run_rule(admin, rule))

    assert second.job.state == JobState.SUCCEEDED, second.job.log
    assert sorted(remote.tags("web/lib")) == ["1.0", "1.1"]
    assert remote.head_manifest("web/lib", "1.1").digest == newer.digest
    task = second.tasks.get()
    assert (task.tags_copied, task.tags_skipped) == (1, 1)
    assert blob_uploads(basic_registry) == sent + 2  # the new image's config and layer, nothing else


def test_an_immediate_rule_copies_a_push_and_deletes_only_when_it_says_so(
    wired: Registry, web: Project, admin: Actor, endpoint: Endpoint, remote: RegistryClient, portal_admin: User
) -> None:
    image = pushed(wired, web, "web/site", ["1.0", "stable", "old"])
    copying = services.create_rule(admin, "mirror", web, endpoint, trigger=Trigger.IMMEDIATE, enabled=False)
    deleting = services.create_rule(
        admin, "mirror-deletes", web, endpoint, trigger=Trigger.IMMEDIATE, replicate_deletion=True,
        destination_project="dr", enabled=True,
    )  # fmt: skip
    assert run(Execution.objects.get(rule=deleting)).job.state == JobState.SUCCEEDED
    services.set_rule_enabled(admin, copying, True)
    assert run(Execution.objects.filter(rule=copying).get()).job.state == JobState.SUCCEEDED

    # A push, as the event receiver applies it: each immediate rule that takes it starts a run of that tag.
    newer = push_image(wired.url, "web/site", ["2.0"])
    Tag.objects.create(repository=Repository.objects.get(name="web/site"), name="2.0", digest=newer.digest)
    for followup in events.PUSH_FOLLOWUPS:
        followup(Tag.objects.get(name="2.0"))
    started = Execution.objects.filter(cause=Execution.Cause.IMMEDIATE).order_by("pk")
    assert [e.rule.name for e in started] == ["mirror", "mirror-deletes"]
    for execution in started:
        assert run(execution).job.state == JobState.SUCCEEDED
        assert execution.tasks.get().tags == ["2.0"]
    assert remote.head_manifest("dr/site", "2.0").digest == newer.digest
    assert remote.head_manifest("web/site", "2.0").digest == newer.digest

    # Deleting a tag here: only the rule that replicates deletions deletes it there, and keeps its siblings.
    registry_services.delete_tag(admin, Tag.objects.get(name="old"))
    deletion = Execution.objects.get(job__parameters__operation=Task.Operation.DELETE)
    assert deletion.rule == deleting
    assert run(deletion).job.state == JobState.SUCCEEDED, deletion.job.log
    assert remote.head_manifest("dr/site", "old") is None
    assert remote.head_manifest("dr/site", "1.0").digest == image.digest
    assert remote.head_manifest("dr/site", "stable").digest == image.digest
    assert remote.head_manifest("web/site", "old").digest == image.digest, "a rule without deletions deleted"
    assert deletion.tasks.get().tags_deleted == 1


def test_the_rules_of_manage_replication_endpoints_and_rules(
    wired: Registry, web: Project, admin: Actor, endpoint: Endpoint, basic_registry: Registry
) -> None:
    from portal.core.errors import Conflict

    pushed(wired, web, "web/app", ["1.0"])
    rule = services.create_rule(admin, "nightly-web", web, endpoint, enabled=True)

    with pytest.raises(Conflict, match="endpoint 'dr-site' is used by rules: nightly-web"):
        services.update_endpoint(admin, endpoint, url=basic_registry.url)
    with pytest.raises(Conflict, match="endpoint 'dr-site' is used by rules: nightly-web"):
        services.delete_endpoint(admin, endpoint)
    with pytest.raises(Conflict, match="rule 'nightly-web' is enabled: disable it before editing it"):
        services.update_rule(admin, rule, tag_filter="1.*")
    with pytest.raises(Conflict, match="rule 'nightly-web' has 1 running execution"):
        services.delete_rule(admin, rule)

    # Disabling stops the running execution (it has not started: it ends STOPPED at once, with its tasks).
    services.set_rule_enabled(admin, rule, False)
    job = Job.objects.get(replication_execution__rule=rule)
    assert job.state == JobState.STOPPED
    services.update_rule(admin, rule, tag_filter="1.*")
    services.delete_rule(admin, rule)
    services.delete_endpoint(admin, endpoint)
    assert not Endpoint.objects.exists()


def test_a_layer_shared_by_two_repositories_of_a_run_is_sent_once_and_mounted_for_the_other(
    wired: Registry, web: Project, admin: Actor, endpoint: Endpoint, remote: RegistryClient, settings: Any
) -> None:
    settings.REPLICATION_CONCURRENCY = 1
    image = pushed(wired, web, "web/base", ["1.0"])
    source = RegistryClient()
    manifest = source.get_manifest("web/base", "1.0")
    for part in [manifest.document()["config"], *manifest.document()["layers"]]:
        assert source.mount_blob("web/copy", part["digest"], "web/base")
    source.put_manifest("web/copy", "1.0", manifest)
    Tag.objects.create(repository=Repository.objects.create(project=web, name="web/copy"), name="1.0",
                       digest=image.digest, size=image.size)  # fmt: skip

    execution = run(services.create_rule(admin, "shared", web, endpoint, destination_project="shared").executions.get())

    assert execution.job.state == JobState.SUCCEEDED, execution.job.log
    base, copy = execution.tasks.order_by("repository")
    assert (base.repository, base.blobs_copied, base.blobs_mounted) == ("web/base", 2, 0)
    assert (copy.repository, copy.blobs_copied, copy.blobs_mounted) == ("web/copy", 0, 2)
    assert remote.head_manifest("shared/copy", "1.0").digest == image.digest
