# The foreign keys' own indexes that a composite index or unique constraint starting with the same column makes
# redundant (tests/portal/test_indexes.py keeps it so): dropped, constraints untouched.

import django.db.models.deletion
from django.db import migrations, models

from portal.schema import drop_foreign_key_index


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0004_run_created_index"),
        ("scanners", "0001_initial"),
    ]

    operations = [
        drop_foreign_key_index(
            model_name="attackscenario", name="run", table="scanners_attackscenario", column="run_id",
            index="scanners_attackscenario_run_id_a51accb0",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="scenarios", to="deliveries.pipelinerun"),
        ),
        drop_foreign_key_index(
            model_name="finding", name="run", table="scanners_finding", column="run_id",
            index="scanners_finding_run_id_557bad73",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="findings", to="deliveries.pipelinerun"),
        ),
        drop_foreign_key_index(
            model_name="loadtestbucket", name="report", table="scanners_loadtestbucket", column="report_id",
            index="scanners_loadtestbucket_report_id_fcecfdd8",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="load_buckets", to="scanners.report"),
        ),
        drop_foreign_key_index(
            model_name="loadteststat", name="report", table="scanners_loadteststat", column="report_id",
            index="scanners_loadteststat_report_id_0693df58",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="load_stats", to="scanners.report"),
        ),
        drop_foreign_key_index(
            model_name="report", name="run", table="scanners_report", column="run_id",
            index="scanners_report_run_id_54413ecd",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="reports", to="deliveries.pipelinerun"),
        ),
    ]
