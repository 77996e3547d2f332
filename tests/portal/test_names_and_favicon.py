"""The favicon every page links and /favicon.ico; the Directory section's job table lists directory jobs only."""

from __future__ import annotations

from portal.core.audit import Actor
from portal.core.jobs import create_job
from tests.conftest import logged_in, page_text


def test_favicon_ico_answers_for_anyone(client) -> None:
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"] == "/static/wharf/favicon.ico"
    icon = client.get(answer["Location"])
    assert icon.status_code == 200 and b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"
    assert client.post("/favicon.ico").status_code == 405


def test_every_page_links_the_icon(client, portal_admin) -> None:
    for text in (page_text(client.get("/login/")), page_text(logged_in(client, portal_admin).get("/"))):
        assert '<link rel="icon" href="/static/wharf/favicon.svg" type="image/svg+xml">' in text


def test_directory_job_table_lists_only_directory_jobs(client, portal_admin) -> None:
    gc = create_job(Actor.system("test"), "registry_gc", "registry")
    sync = create_job(Actor.system("test"), "directory_sync", "directory")
    text = page_text(logged_in(client, portal_admin).get("/configuration/"))
    directory = text.split('id="directory-heading"')[1].split("</section>")[0]
    assert f'id="job-{sync.pk}"' in directory and f'id="job-{gc.pk}"' not in directory
