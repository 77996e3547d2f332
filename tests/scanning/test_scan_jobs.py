"""Scan jobs on real Celery workers and a real beat: a scan waits on its own queue until a worker that consumes it
starts (a worker of the default queue alone never takes it), and the daily scan of all images fires at the time
Configuration sets, finding what the fixture feeds say about the pushed vulnerable image.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from portal.core.audit import Actor
from portal.core.jobs import send_task
from portal.core.models import Job, JobState, ScanSchedule, SystemSettings, User
from portal.core.schedules import SCAN_ALL, install_scan_all
from projects.models import Project
from registries.models import Tag
from scanning import services
from scanning.models import ImageScan, ScanState
from tests.integration.registry import Registry, point_portal_at
from tests.integration.site import Site, site_for
from tests.scanning.image_builder import BuiltImage
from tests.scanning.scanned_images import FINDINGS, findings, pushed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The beat's clock is set so that its next minute starts this many seconds after it starts (tests/integration/beat.py).
BEAT_MINUTE_IN = 12
# The beat looks for a changed schedule every second: a change this close to the minute it names waits a minute more.
CHANGE_MARGIN = 5
# The beat fires at that minute (or the next, after a slow start); the scan of one small image takes seconds after it.
BEAT_BUDGET = 75.0
# How long the scan must stay queued while only a worker of the default queue runs.
UNTAKEN = 4.0


@pytest.fixture
def site(tmp_path: Path, settings: Any, registry: Registry) -> Iterator[Site]:
    """Workers and a beat reading the test registry, on a queue (and scans queue) of the test's own."""
    point_portal_at(settings, registry)
    yield from site_for(tmp_path, settings, {"WHARF_REGISTRY_URL": registry.url})


@pytest.fixture
def tag(site: Site, registry: Registry, vulnerable_image: BuiltImage, feed_dir: Path) -> Tag:
    """The vulnerable image pushed as web/app:1.0, with the fixture feeds loaded (no network)."""
    services.import_path(Actor.system("test"), feed_dir)
    web = Project.objects.create(name="web")
    return pushed(registry, web, "web/app", "1.0", vulnerable_image)


def queued(site: Site, queue: str) -> int:
    """Messages waiting in one of the site's queues on the broker."""
    return int(redis.Redis.from_url(site.broker).llen(queue))


def test_a_scan_waits_on_the_scans_queue_until_a_worker_consuming_it_starts(
    site: Site, tag: Tag, portal_admin: User
) -> None:
    default_only = site.start_worker(scans=False)
    scan = services.start_scan(Actor(portal_admin, "127.0.0.1"), tag)
    # The default queue's worker is alive and taking work meanwhile: it runs a task sent to the default queue.
    send_task("portal.recover_jobs")
    deadline = time.monotonic() + 30
    while "Task portal.recover_jobs[" not in default_only.log() or " succeeded in " not in default_only.log():
        assert time.monotonic() < deadline, f"the default worker took no task:\n{default_only.log()[-3000:]}"
        time.sleep(0.2)
    time.sleep(UNTAKEN)

    job = Job.objects.get(pk=scan.job_id)
    assert job.state == JobState.PENDING and job.attempts == 0, job.log
    assert queued(site, f"{site.queue}.{services.SCAN_QUEUE}") >= 1
    assert "Task portal.run_job[" not in default_only.log()
    assert ImageScan.objects.get(pk=scan.pk).state == ScanState.PENDING

    site.start_worker()
    job = site.wait_for(lambda j: j.is_finished, job, "the scan on the scans worker", seconds=60)

    assert job.state == JobState.SUCCEEDED, job.log
    assert findings(ImageScan.objects.get(pk=scan.pk)) == FINDINGS
    assert "Task portal.run_job[" not in default_only.log()


def test_the_beat_scans_every_image_at_the_configured_time(site: Site, tag: Tag) -> None:
    site.start_worker()
    beat = site.start_beat(SCAN_ALL, minute_in=BEAT_MINUTE_IN)
    # The administrator sets the time while the beat runs (as on the Configuration page): it follows. The time is
    # the beat's next minute on its clock, which runs ahead of the real one so that the minute is seconds away.
    now = beat.clock()
    fire = (now + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (fire - now).total_seconds() < CHANGE_MARGIN:
        # Too close to the boundary for the beat to read the change before it: the minute after.
        fire += datetime.timedelta(minutes=1)
    current = SystemSettings.load()
    current.scan_schedule, current.scan_time = ScanSchedule.DAILY, fire.time()
    current.save()
    install_scan_all()
    beat.date_schedule_change()
    assert not Job.objects.filter(kind=services.SCAN_ALL).exists()

    deadline = time.monotonic() + BEAT_BUDGET
    while not Job.objects.filter(kind=services.SCAN_ALL).exists():
        assert time.monotonic() < deadline, f"the beat did not start the scan of all images by {fire:%H:%M}"
        time.sleep(0.5)
    job = Job.objects.get(kind=services.SCAN_ALL)
    # Not before the configured time on the beat's clock (the worker started the job when the beat sent it).
    assert beat.clock(job.created) >= fire, f"started at {beat.clock(job.created):%H:%M:%S}, before {fire:%H:%M}"
    assert job.created_by == "scheduler" and job.parameters == {"manual": False}
    left = max(deadline - time.monotonic(), 5.0)
    job = site.wait_for(lambda j: j.is_finished, job, "the scheduled scan of all images", seconds=left)

    assert job.state == JobState.SUCCEEDED, job.log
    assert "1 images scanned" in job.log, job.log
    image_scan = ImageScan.objects.get(digest=tag.digest)
    assert image_scan.state == ScanState.SUCCEEDED
    assert findings(image_scan) == FINDINGS
