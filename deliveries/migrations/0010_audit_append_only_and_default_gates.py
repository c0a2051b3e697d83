"""The audit log append-only in the database too, and a default quality gate for every project that has none.

On PostgreSQL a trigger refuses UPDATE and DELETE on the audit table, whoever asks (the ORM, raw SQL, psql). One
UPDATE stays allowed: a deleted user or project leaves its events, whose foreign key the database sets to NULL
(on_delete=SET_NULL); nothing else may change. SQLite (the embedded default) relies on the model and the admin.
"""

from django.db import migrations

AUDIT_TRIGGER = """
CREATE OR REPLACE FUNCTION deliveries_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.actor_id IS NULL OR NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id)
       AND (NEW.project_id IS NULL OR NEW.project_id IS NOT DISTINCT FROM OLD.project_id)
       AND (NEW.id, NEW.created_at, NEW.actor_label, NEW.action, NEW.target_type, NEW.target_id, NEW.data::text)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.created_at, OLD.actor_label, OLD.action, OLD.target_type, OLD.target_id, OLD.data::text)
    THEN
        RETURN NEW;  -- a deleted user or project set to NULL: the event itself is unchanged
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER deliveries_audit_append_only BEFORE UPDATE OR DELETE ON deliveries_auditevent
    FOR EACH ROW EXECUTE FUNCTION deliveries_audit_append_only();
"""
DROP_AUDIT_TRIGGER = """
DROP TRIGGER IF EXISTS deliveries_audit_append_only ON deliveries_auditevent;
DROP FUNCTION IF EXISTS deliveries_audit_append_only();
"""

# The default gate as it was when this migration was written (promotions.gates.DEFAULT_GATE is the living copy,
# used for projects made later): metric, comparator, threshold, relative to production.
DEFAULT_CONDITIONS = [
    ("new_critical_vulnerabilities", "lte", 0, False),
    ("failed_scenarios", "lte", 0, False),
    ("p95_ms", "lte", 20, True),
    ("error_percent", "lte", 1, False),
    ("staging_availability", "eq", 1, False),
]


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # no placeholders: the % in RAISE stays as it is

    return run


def add_default_gates(apps, schema_editor):
    Project = apps.get_model("deliveries", "Project")
    QualityGate = apps.get_model("deliveries", "QualityGate")
    GateCondition = apps.get_model("deliveries", "GateCondition")
    for project in Project.objects.filter(quality_gate__isnull=True):
        gate = QualityGate.objects.create(project=project)
        GateCondition.objects.bulk_create([
            GateCondition(gate=gate, metric=metric, comparator=comparator, threshold=threshold,
                          relative_to_production=relative)
            for metric, comparator, threshold, relative in DEFAULT_CONDITIONS
        ])


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0009_promotion_flow")]

    operations = [
        migrations.RunPython(on_postgresql(AUDIT_TRIGGER), on_postgresql(DROP_AUDIT_TRIGGER)),
        migrations.RunPython(add_default_gates, migrations.RunPython.noop),
    ]
