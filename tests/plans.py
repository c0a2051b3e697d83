"""Query plans for tests that check a read does not grow with the history: which index it reads, on both databases."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.models import PipelineRun, RunStatus


def plan_of(sql: str, params=()) -> str:
    """The plan of one statement, as text (on tables filled by `long_history`, so that it is the plan of a history)."""
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def generic_plan_of(sql: str, params=()) -> str:
    """On PostgreSQL, the plan it caches for a prepared statement once it stops planning for the values (the portal
    prepares what a connection repeats): planned for no value in particular. SQLite has no such plan: its plan."""
    if connection.vendor != "postgresql":
        return plan_of(sql, params)
    numbered = iter(range(1, len(params) + 1))
    prepared = re.sub(r"(?<!%)%s", lambda _: f"${next(numbered)}", sql).replace("%%", "%")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_plan_of AS {prepared}")
        try:
            from psycopg import sql as psycopg_sql  # the values written out: EXECUTE takes no bound parameters

            values = psycopg_sql.SQL(", ").join(map(psycopg_sql.Literal, params)).as_string(cursor.cursor.connection)
            cursor.execute("EXPLAIN EXECUTE generic_plan_of" + (f"({values})" if params else ""))
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic_plan_of")
            cursor.execute("SET LOCAL plan_cache_mode = auto")


def range_reads(plan: str, column: str) -> list[str]:
    """The lines of a plan where an index is read from a bound on `column`: SQLite's SEARCH (`column>?`,
    `column<?`), PostgreSQL's Index Cond (`column >= ...`)."""
    bound = re.compile(rf"\b{column} ?[<>]")
    return [line for line in plan.splitlines()
            if (line.strip().startswith("SEARCH ") or "Index Cond" in line) and bound.search(line)]


def scans(plan: str, table: str) -> list[str]:
    """The lines of a plan that read a table whole: SQLite's SCAN (through an index or not: SEARCH is a range),
    PostgreSQL's Seq Scan."""
    return [line for line in plan.splitlines()
            if table in line and ("Seq Scan" in line or line.strip().startswith("SCAN "))]


class Executed:
    """The statements run inside `with Executed() as executed:`, with their parameters."""

    def __enter__(self):
        self.statements = []
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, params))
        return execute(sql, params, many, context)

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)

    def reading(self, table: str) -> list[tuple[str, tuple]]:
        return [(sql, params) for sql, params in self.statements if f'FROM "{table}"' in sql]


@pytest.fixture
def long_history(db):
    """make(project, runs=3000, days=730, other_projects=()): `runs` runs of `project` (and as many of each of
    `other_projects`) spread evenly over the last `days` days, on a few branches and statuses, made in bulk, and the
    tables' statistics brought up to date: the planners then choose as they do on a real history.

    ANALYZE writes a table's size (pg_class) outside the test's transaction, and rolled back rows leave their pages:
    either would change the plans of the tests after this one. On PostgreSQL the runs table is first emptied by a
    TRUNCATE, which the transaction's rollback undoes whole: the table, its pages and its size are as before."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE deliveries_pipelinerun CASCADE")

    def make(project, *, runs: int = 3000, days: int = 730, other_projects=()):
        now = timezone.now()
        step = timedelta(days=days) / runs
        made = []
        for owner in (project, *other_projects):
            rows = [PipelineRun(project=owner, branch=BRANCHES[n % len(BRANCHES)], status=STATUSES[n % len(STATUSES)],
                                created_at=now - (runs - n) * step, started_at=now - (runs - n) * step,
                                finished_at=now - (runs - n) * step + timedelta(minutes=12)) for n in range(runs)]
            made.extend(PipelineRun.objects.bulk_create(rows, batch_size=500))
        analyze("deliveries_pipelinerun")
        return made

    return make


def deploy_history(runs, *, production, staging):
    """Each green master run of `runs` deployed to production, each green dev run to staging, in bulk."""
    from environments.models import Deployment

    Deployment.objects.bulk_create([
        Deployment(project=run.project, environment=production if run.branch == "master" else staging,
                   source_run=run, status="success", kind="deploy", started_at=run.finished_at,
                   finished_at=run.finished_at + timedelta(minutes=3))
        for run in runs if run.status == "success" and run.branch in ("dev", "master")], batch_size=500)


BRANCHES = ["dev"] * 6 + ["master"] * 2 + ["feature/a", "feature/b"]
STATUSES = [RunStatus.SUCCESS] * 7 + [RunStatus.FAILED, RunStatus.UNSTABLE, RunStatus.ABORTED]


def analyze(*tables: str):
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
