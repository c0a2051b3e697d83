# The foreign keys' own indexes that a composite index or unique constraint starting with the same column makes
# redundant (tests/portal/test_indexes.py keeps it so): dropped, constraints untouched.

import django.db.models.deletion
from django.db import migrations, models

from portal.schema import drop_foreign_key_index


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0004_run_created_index"),
        ("environments", "0001_initial"),
    ]

    operations = [
        drop_foreign_key_index(
            model_name="availabilitycheck", name="environment", table="environments_availabilitycheck", column="environment_id",
            index="environments_availabilitycheck_environment_id_215b7f68",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="checks", to="environments.environment"),
        ),
        drop_foreign_key_index(
            model_name="deployment", name="environment", table="environments_deployment", column="environment_id",
            index="environments_deployment_environment_id_b4402161",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="deployments", to="environments.environment"),
        ),
        drop_foreign_key_index(
            model_name="deployment", name="project", table="environments_deployment", column="project_id",
            index="environments_deployment_project_id_1cf5e008",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="deployments", to="deliveries.project"),
        ),
        drop_foreign_key_index(
            model_name="host", name="environment", table="environments_host", column="environment_id",
            index="environments_host_environment_id_581c639e",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="hosts", to="environments.environment"),
        ),
    ]
