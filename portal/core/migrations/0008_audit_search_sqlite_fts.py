"""The audit log's free-text search through an FTS5 trigram index, on SQLite only (0007 does it on PostgreSQL).

SQLite has no pg_trgm; its FTS5 trigram tokenizer answers `LIKE '%text%'` from an index, case-insensitively, for
text of three characters or more. The table `portal_auditevent_search` holds, per event id, the same lines as
portal.core.filters.AuditSearchText (change one, change both); triggers keep it in step with the events, which are
only ever added (the update and delete triggers are there for completeness). On PostgreSQL this does nothing.
"""

from django.db import migrations

TABLE = "portal_auditevent_search"
TEXT = (
    "({row}username || char(10) || {row}action || char(10) || {row}resource_type || char(10) || {row}resource_name"
    " || char(10) || {row}project_name || char(10) || COALESCE({row}client_address, ''))"
)


def create_search_table(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    new = TEXT.format(row="new.")
    for statement in (
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, tokenize='trigram')",
        f"INSERT INTO {TABLE}(rowid, text) SELECT id, {TEXT.format(row='')} FROM portal_auditevent",
        f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON portal_auditevent BEGIN"
        f" INSERT INTO {TABLE}(rowid, text) VALUES (new.id, {new}); END",
        f"CREATE TRIGGER {TABLE}_update AFTER UPDATE ON portal_auditevent BEGIN"
        f" UPDATE {TABLE} SET text = {new} WHERE rowid = old.id; END",
        f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON portal_auditevent BEGIN"
        f" DELETE FROM {TABLE} WHERE rowid = old.id; END",
    ):
        schema_editor.execute(statement)


def drop_search_table(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for trigger in ("insert", "update", "delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0007_audit_search_trigram_index"),
    ]

    operations = [
        migrations.RunPython(create_search_table, drop_search_table),
    ]
