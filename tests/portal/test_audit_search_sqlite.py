"""The audit log's free-text search on SQLite, the embedded default: migration 0008's FTS5 trigram table.

The suite's database is PostgreSQL, so this runs a `manage.py shell` on a fresh SQLite data directory, migrated as
`make run` would, and compares the indexed search with the plain LIKE every other search path uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.launcher_helpers import embedded_env

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json
from django.db import connection
from portal.core.filters import AuditEventFilterSet, AuditSearchText
from portal.core.models import AuditEvent

AuditEvent.objects.create(username="Alice", action="push", resource_type="tag", resource_name="web/App:1.0",
                          project_name="web", client_address="127.0.0.1")
AuditEvent.objects.create(username="bob", action="delete", resource_type="tag", resource_name="db/x:2",
                          project_name="db")
gone = AuditEvent.objects.create(username="carol", action="create", resource_type="project", resource_name="tmp")
gone.delete()
answers = {}
for text in ["app:1", "ALICE", "127.0.0", "web/a", "carol", "nomatch", "db/x_2", "50%", "ob\ndel", "b"]:
    found = AuditEventFilterSet({"q": text}, queryset=AuditEvent.objects.all()).qs
    plain = AuditEvent.objects.alias(s=AuditSearchText()).filter(s__icontains=text)
    answers[text] = [sorted(e.username for e in found), sorted(e.username for e in plain)]
query = str(AuditEventFilterSet({"q": "alice"}, queryset=AuditEvent.objects.all()).qs.query)
# 1,200 pulls make "pull" common (1,000 events or more): it is searched by reading the log newest first.
AuditEvent.objects.bulk_create(
    AuditEvent(username=f"u{i:04d}", action="pull", resource_type="tag", resource_name=f"r/{i}:1", project_name="r")
    for i in range(1200)
)
common = {}
for text in ["PULL", "u1199", "r/11", "alice"]:
    found = AuditEventFilterSet({"q": text}, queryset=AuditEvent.objects.all()).qs
    plain = AuditEvent.objects.alias(s=AuditSearchText()).filter(s__icontains=text)
    common[text] = [[e.username for e in found[:5]], [e.username for e in plain.order_by("-time", "-id")[:5]],
                    found.count(), plain.count(), "portal_auditevent_search" in str(found.query)]
with connection.cursor() as cursor:
    cursor.execute("SELECT text FROM portal_auditevent_search ORDER BY rowid")
    rows = [row[0] for row in cursor.fetchall()]
print("RESULT" + json.dumps({"answers": answers, "query": query, "rows": rows, "common": common}))
"""


def test_sqlite_search_uses_the_trigram_table_and_finds_what_like_finds(tmp_path: Path) -> None:
    """Every search answers as the plain LIKE does, through the FTS table where the text allows, kept in step."""
    env = embedded_env(tmp_path / "data")
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=REPO, check=True, timeout=120)
    shell = subprocess.run(
        [*manage, "shell", "-c", SCRIPT], env=env, cwd=REPO, check=True, timeout=60, capture_output=True, text=True
    )
    result = json.loads(shell.stdout.split("RESULT", 1)[1])

    for text, (found, plain) in result["answers"].items():
        assert found == plain, text
    assert result["answers"]["ALICE"][0] == ["Alice"]
    assert result["answers"]["127.0.0"][0] == ["Alice"]
    assert result["answers"]["carol"][0] == []
    assert result["answers"]["b"][0] == ["Alice", "bob"]
    assert "portal_auditevent_search" in result["query"]
    for text, (newest, plain_newest, count, plain_count, indexed) in result["common"].items():
        assert (newest, count) == (plain_newest, plain_count), text
        assert indexed == (text != "PULL"), text
    assert result["common"]["PULL"][0] == ["u1199", "u1198", "u1197", "u1196", "u1195"]
    assert result["common"]["PULL"][2] == 1200
    assert result["common"]["u1199"][2] == 1
    assert result["common"]["r/11"][2] == 111  # r/11, r/110..r/119, r/1100..r/1199
    assert len(result["rows"]) == 2 + 1200
    assert result["rows"][:2] == [
        "Alice\npush\ntag\nweb/App:1.0\nweb\n127.0.0.1",
        "bob\ndelete\ntag\ndb/x:2\ndb\n",
    ]
