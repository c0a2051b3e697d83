"""The newest row of every (project, key) of a table, at a cost that follows the number of keys, not of rows.

"The newest run of each branch" or "the newest successful deployment in each environment" as a GROUP BY reads
every row of the history. A loose index scan reads one index entry per key instead: with an index on
(project, [filter columns], key, -id), the first entry of a project is its first key's newest row; the first
entry after that key is the next key's newest row; and so on, one probe each (a recursive query, which PostgreSQL
and SQLite both run). The ORDER BY key, id DESC is what only that index can answer, so neither database is
tempted to walk the primary key backwards until it meets a matching row (which, for a key whose last row is
old, reads the whole history).
"""

from django.db import connection
from django.db.models import BooleanField, F, Func
from django.db.models.expressions import RawSQL


def newest_per_key(model, key: str, *, where: str = "", params: tuple = (), project_id: int | None = None) -> Func:
    """A filter for `model`: the row is the newest (highest id) of its (project, key). `key` is a field of `model`;
    `where` (with `params`) narrows the rows that count, named `r`: "r.status = %s". With `project_id`, that
    project's only: the scan starts from it (filtered afterwards by project instead, SQLite without statistics read
    every row of the project through its index to keep the few ids)."""
    quote = connection.ops.quote_name
    project_field = model._meta.get_field("project")
    table, project, key = (quote(model._meta.db_table), quote(project_field.column),
                           quote(model._meta.get_field(key).column))
    projects = quote(project_field.related_model._meta.db_table)
    narrow = f"AND {where}" if where else ""
    # names from model meta, values as parameters
    sql = f"""
        WITH RECURSIVE newest(project_id, id) AS (
            SELECT p.id, (SELECT r.id FROM {table} r WHERE r.{project} = p.id {narrow}
                          ORDER BY r.{key}, r.id DESC LIMIT 1)
            FROM {projects} p {"WHERE p.id = %s" if project_id is not None else ""}
            UNION ALL
            SELECT n.project_id, (SELECT r.id FROM {table} r WHERE r.{project} = n.project_id {narrow}
                                  AND r.{key} > (SELECT last.{key} FROM {table} last WHERE last.id = n.id)
                                  ORDER BY r.{key}, r.id DESC LIMIT 1)
            FROM newest n WHERE n.id IS NOT NULL
        )
        SELECT id FROM newest WHERE id IS NOT NULL
    """  # noqa: S608
    seed = (*params, *(() if project_id is None else (project_id,)))
    ids = RawSQL(sql, (*seed, *params))  # noqa: S611 - names from model meta, values as parameters
    if connection.vendor == "postgresql":
        # PostgreSQL guesses hundreds of rows from a recursive query, and may then read the whole table to join
        # them; an ARRAY is computed first, and its few ids are then looked up by primary key.
        return Func(F("pk"), ids, arg_joiner=" = ANY(ARRAY", template="%(expressions)s)", output_field=BooleanField())
    return Func(F("pk"), ids, arg_joiner=" IN ", template="%(expressions)s", output_field=BooleanField())
