"""Schema operations the migrations share."""

from django.db import migrations


def drop_foreign_key_index(*, model_name: str, name: str, field, table: str, column: str, index: str):
    """Stop keeping a foreign key's own index, which another index starting with its column makes redundant.

    Django's AlterField would drop and re-create the key's constraint, checking every row again under a lock
    (minutes on a large findings table); dropping the index alone is instant and leaves the constraint as it is.
    `index` is the name Django gave it (the same on PostgreSQL and SQLite); going back re-creates it.
    """
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
        database_operations=[
            migrations.RunSQL(
                f'DROP INDEX IF EXISTS "{index}"',
                reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("{column}")',
            )
        ],
    )
