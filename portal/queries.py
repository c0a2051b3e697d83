"""Queryset helpers every app shares, and the two writes of the hot paths."""

import functools

from django.db import DatabaseError, connection
from django.db.models.signals import post_save, pre_save


def first(queryset):
    """The first row of a queryset, or None, without ordering unless the queryset asks for one (`.first()`
    orders by the primary key, a bare queryset by the model's default ordering)."""
    if not queryset.query.order_by:
        queryset = queryset.order_by()
    rows = list(queryset[:1])
    return rows[0] if rows else None


# --- Writes of the hot paths -----------------------------------------------------------------------
# A stage callback updates its stage and appends an audit event on every call. Django building those two
# statements (Model.save: the queryset, the query, the compiler) cost a callback a sixth of its instructions
# (benchmarks/callbacks_instructions.py), so they are made once per model, fields and database, with names from
# the model and values through each field's own conversion, as Model.save converts them. Plain values only (no
# expressions), and no pre_save/post_save signals: they refuse a model that has receivers.


def insert_row(instance) -> None:
    """Insert a new row, as `instance.save(force_insert=True)` would, and set its primary key (the database's)."""
    refuse_listened(type(instance))
    if instance.pk is not None:
        raise ValueError(f"{type(instance).__name__} {instance.pk} is not new: the database picks the key.")
    sql, fields = insert_statement(type(instance), connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias


def update_row(instance, names) -> None:
    """Write these fields of a saved row, as `instance.save(update_fields=names)` would, and nothing else."""
    refuse_listened(type(instance))
    sql, fields = update_statement(type(instance), tuple(names), connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, instance.pk])
        if cursor.rowcount != 1:
            raise DatabaseError(f"{type(instance).__name__} {instance.pk} is gone: nothing was updated.")


def refuse_listened(model) -> None:
    """Receivers of a model's save signals expect to hear of every save: these writes would skip them."""
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        raise TypeError(f"{model.__name__} has save signal receivers, which these writes would skip: use save()")


@functools.cache
def insert_statement(model, vendor: str) -> tuple[str, list]:
    """INSERT of every column but the primary key, returning the key; and those columns' fields."""
    meta, quote = model._meta, connection.ops.quote_name
    if not (meta.pk.db_returning and connection.features.can_return_columns_from_insert):
        raise TypeError(f"{model.__name__}'s key is not one {vendor} makes and returns on insert")
    fields = [field for field in meta.concrete_fields if field is not meta.pk and not field.generated]
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    returning, _ = connection.ops.return_insert_columns([meta.pk])
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) {returning}", fields  # noqa: S608


@functools.cache
def update_statement(model, names: tuple[str, ...], vendor: str) -> tuple[str, list]:
    """UPDATE of these fields by primary key (its last parameter); and the fields."""
    meta, quote = model._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s", fields  # noqa: S608
