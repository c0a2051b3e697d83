"""The portal's indexes: one per access path. A foreign key's own index is dropped where another index, or a unique
constraint, already starts with its column: PostgreSQL reads that one for the key's look-ups and for cascades, and
every insert (a new stage, the 30,000 findings of a Trivy report) stops paying for the spare."""

import pytest
from django.apps import apps
from django.db import connection, models

PORTAL_APPS = ("deliveries", "environments", "scanners")


def leading_columns(model) -> set[str]:
    """Fields that lead an index or a unique constraint of the model, one that covers every row (not partial)."""
    leads = set()
    for index in model._meta.indexes:
        if index.fields and index.condition is None:
            leads.add(index.fields[0].lstrip("-"))
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.fields and constraint.condition is None:
            leads.add(constraint.fields[0])
    for fields in model._meta.unique_together:
        leads.add(fields[0])
    return leads


def redundant_foreign_key_indexes() -> list[str]:
    found = []
    for app in PORTAL_APPS:
        for model in apps.get_app_config(app).get_models():
            leads = leading_columns(model)
            for field in model._meta.get_fields():
                if isinstance(field, models.ForeignKey) and not field.unique and field.db_index and field.name in leads:
                    found.append(f"{model._meta.label}.{field.name}")
    return found


def test_no_foreign_key_keeps_an_index_that_another_one_covers():
    assert redundant_foreign_key_indexes() == []


def test_the_check_sees_a_covered_foreign_key():
    # The rule itself: a key that leads a unique constraint is flagged while it keeps an index of its own.
    from deliveries.models import Stage

    run = Stage._meta.get_field("run")
    assert "run" in leading_columns(Stage)
    kept = run.db_index
    run.db_index = True
    try:
        assert "deliveries.Stage.run" in redundant_foreign_key_indexes()
    finally:
        run.db_index = kept


@pytest.mark.django_db
def test_the_database_keeps_no_index_of_its_own_for_those_keys():
    # The migrations dropped them by name, on PostgreSQL as on SQLite; the constraints stay.
    leftovers, keys = [], 0
    with connection.cursor() as cursor:
        for app in PORTAL_APPS:
            for model in apps.get_app_config(app).get_models():
                fields = [field for field in model._meta.get_fields()
                          if isinstance(field, models.ForeignKey) and not field.db_index]
                if not fields:
                    continue
                constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
                for field in fields:
                    keys += 1
                    leftovers += [name for name, info in constraints.items()
                                  if info["index"] and not info["unique"] and info["columns"] == [field.column]]
                    assert any(info["foreign_key"] and info["columns"] == [field.column]
                               for info in constraints.values()), f"{model._meta.label}.{field.name} lost its key"
    assert keys >= 13
    assert leftovers == []
