"""Fast inserts of many plain rows, for ingestion of large reports.

bulk_create builds a model instance and prepares every value through the field machinery, which
costs ~0.1 ms a row: 30,000 findings would spend seconds there. For rows whose values are already
plain (str, int, bool, None), this writes them directly: COPY on PostgreSQL, executemany elsewhere.
Rows are consumed as they come (COPY streams them, executemany takes batches), so a generator of a million
rows never sits in memory.
"""

from collections.abc import Iterable, Sequence
from itertools import islice

from django.db import connection

BATCH_ROWS = 5000


def insert_rows(model, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Insert rows of plain values into model's table; `columns` are field attnames (e.g. "run_id")."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(model._meta.get_field(column).column) for column in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({names}) VALUES ({placeholders})"  # noqa: S608 - names from model meta
            rows = iter(rows)
            while batch := list(islice(rows, BATCH_ROWS)):  # rows may be a generator reading a huge file
                cursor.executemany(sql, batch)
