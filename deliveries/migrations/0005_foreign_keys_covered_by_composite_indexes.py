# The foreign keys' own indexes that a composite index or unique constraint starting with the same column makes
# redundant (tests/portal/test_indexes.py keeps it so): dropped, constraints untouched.

import django.db.models.deletion
from django.db import migrations, models

from portal.schema import drop_foreign_key_index


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0004_run_created_index"),
    ]

    operations = [
        drop_foreign_key_index(
            model_name="artifact", name="run", table="deliveries_artifact", column="run_id",
            index="deliveries_artifact_run_id_5cfa0c49",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="artifacts", to="deliveries.pipelinerun"),
        ),
        drop_foreign_key_index(
            model_name="pipelinerun", name="project", table="deliveries_pipelinerun", column="project_id",
            index="deliveries_pipelinerun_project_id_cfdc241b",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="deliveries.project"),
        ),
        drop_foreign_key_index(
            model_name="stage", name="run", table="deliveries_stage", column="run_id",
            index="deliveries_stage_run_id_b08cf409",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="stages", to="deliveries.pipelinerun"),
        ),
        drop_foreign_key_index(
            model_name="waiver", name="project", table="deliveries_waiver", column="project_id",
            index="deliveries_waiver_project_id_1a14850f",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="waivers", to="deliveries.project"),
        ),
    ]
