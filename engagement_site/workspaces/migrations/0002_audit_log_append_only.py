"""The database itself refuses UPDATE and DELETE on the audit log, so neither a bug
nor a raw query through the ORM can rewrite history. (TRUNCATE stays possible for
test database flushes; the hash chain catches a truncated-and-rewritten log.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION workspaces_auditlog_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'workspaces_auditlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER workspaces_auditlog_append_only
    BEFORE UPDATE OR DELETE ON workspaces_auditlog
    FOR EACH ROW EXECUTE FUNCTION workspaces_auditlog_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS workspaces_auditlog_append_only ON workspaces_auditlog;
DROP FUNCTION IF EXISTS workspaces_auditlog_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
