"""Writes of the deliveries app for Jenkins callbacks: runs, stages, artifacts, reports, deployments.

Every callback is an upsert that tolerates retries, duplicates and any order:

- statuses only move forward (queued < running < finished; pending < running < finished for stages); a
  finished status may be corrected by another finished one, never reopened by a late "running";
- a known timestamp is never replaced by nothing; `started_at` keeps the earliest known;
- a callback for a build number the portal has not seen creates the run (branch "" and status running until
  the run callback says more); a child callback never changes a finished run's status;
- the same request twice writes nothing the second time (no row, no audit event).

Each write runs in one transaction holding the run's row lock (`select_for_update`), so concurrent callbacks
for the same run are serialised on PostgreSQL (SQLite serialises writers anyway: IMMEDIATE transactions). The
first callbacks for a new build number or stage name may still race to insert: the loser's insert fails on
the unique constraint inside a savepoint, and it carries on as an update. The exception is the hot path, an
update of a known stage: one statement that locks that stage's row only (see "Stages").
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.utils import timezone

from deliveries.models import (
    FINISHED_RUN_STATUSES,
    Artifact,
    AuditEvent,
    PipelineRun,
    Project,
    ProjectToken,
    RunStatus,
    RunTrigger,
    Stage,
    StageStatus,
)
from scanners.models import Report
from scanners.services import hash_file, receive_report

MAX_BUILD_NUMBER = 2_147_483_647
LOG_EXCERPT_CHARS = 10_000
RUN_TEXT_FIELDS = ("branch", "commit_sha", "commit_title", "commit_author", "build_url")
RUN_RANK = {RunStatus.QUEUED: 0, RunStatus.RUNNING: 1, **{status: 2 for status in FINISHED_RUN_STATUSES}}


class CallbackError(ValueError):
    """A callback that cannot be applied; `field` names the offending input."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def actor_label_of(token: ProjectToken) -> str:
    return f"{token.name} (dp_{token.prefix})"[:150]


def audit(*, project: Project, actor_label: str, action: str, target, data: dict, cursor=None) -> None:
    """Append an audit event: one INSERT, written from prepared SQL (it is on every callback's path)."""
    values = {
        "created_at": timezone.now(),
        "actor": None,
        "actor_label": actor_label[:150],
        "project": project.pk,
        "action": action,
        "target_type": target._meta.model_name,
        "target_id": str(target.pk),
        "data": data,
    }
    fields = AuditEvent._meta
    params = [fields.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]
    if cursor is not None:
        cursor.execute(hot_sql(connection.vendor)["audit"], params)
        return
    with connection.cursor() as cursor:
        cursor.execute(hot_sql(connection.vendor)["audit"], params)


# --- The hot path ------------------------------------------------------------------------------------
# A farm of Jenkins agents reports every stage start and finish. The token look-up and the audit insert are
# statements written once from the models' metadata, without the ORM's query compilation (which costs several
# times the database round trip here); the stage upsert is one statement (see "Stages" below).

TOKEN_HOT_FIELDS = ("id", "project", "name", "prefix", "token_hash", "last_used_at")
PROJECT_HOT_FIELDS = ("id", "name", "slug")
AUDIT_FIELDS = ("created_at", "actor", "actor_label", "project", "action", "target_type", "target_id", "data")


def column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.lru_cache(maxsize=4)
def hot_sql(vendor: str) -> dict[str, str]:
    # Identifiers come from the models' metadata, quoted; every value is a parameter.
    quote = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(AUDIT_FIELDS))
    token_columns = ", ".join(
        [f"t.{column(ProjectToken, name)}" for name in TOKEN_HOT_FIELDS]
        + [f"p.{column(Project, name)}" for name in PROJECT_HOT_FIELDS]
    )
    token_join = f"{table(ProjectToken)} t INNER JOIN {table(Project)} p ON p.{quote('id')} = t.{quote('project_id')}"
    token_filter = f"t.{quote('prefix')} = %s AND t.{quote('revoked_at')} IS NULL"
    audit_columns = ", ".join(column(AuditEvent, name) for name in AUDIT_FIELDS)
    return {
        "token": f"SELECT {token_columns} FROM {token_join} WHERE {token_filter}",  # noqa: S608
        "audit": f"INSERT INTO {table(AuditEvent)} ({audit_columns}) VALUES ({placeholders})",  # noqa: S608
    }


def attnames(model, names) -> list[str]:
    return [model._meta.get_field(name).attname for name in names]


def datetime_from_db(value):
    """What the ORM's converters do to a datetime column: SQLite returns text, PostgreSQL aware datetimes."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    return convert(value, None, connection) if convert else value


def find_token(token: str) -> ProjectToken | None:
    """The live token row matching a clear token, with its project (id, name, slug; the rest deferred), in one
    statement: `ProjectToken.find` without the ORM's query compilation. The prefix finds the row; the hash is
    compared in constant time."""
    prefix = ProjectToken.prefix_of(token)
    if prefix is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(hot_sql(connection.vendor)["token"], [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    count = len(TOKEN_HOT_FIELDS)
    values = [*row[:count]]
    values[5] = datetime_from_db(values[5])
    found = ProjectToken.from_db(connection.alias, attnames(ProjectToken, TOKEN_HOT_FIELDS), values)
    if not found.matches(token):
        return None
    found.project = Project.from_db(connection.alias, attnames(Project, PROJECT_HOT_FIELDS), row[count:])
    return found


# Verified tokens, per process, for API_TOKEN_CACHE_SECONDS: a farm of agents calling back does not look up
# and hash the same token on every request. Keyed by the token's hash; only tokens that matched get in.
# Revoking through `revoke_tokens`, or saving or deleting a token, empties this process's cache at once;
# another process keeps accepting a revoked token until its entry expires.
VERIFIED_TOKENS: dict[str, tuple[float, ProjectToken]] = {}
VERIFIED_TOKENS_MAX = 1024


def verified_token(token: str) -> ProjectToken | None:
    """`find_token`, remembered for a few seconds."""
    seconds = settings.API_TOKEN_CACHE_SECONDS
    if seconds <= 0:
        return find_token(token)
    key, now = ProjectToken.hash_token(token), time.monotonic()
    remembered = VERIFIED_TOKENS.get(key)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    found = find_token(token)
    if found is None:
        VERIFIED_TOKENS.pop(key, None)
        return None
    if len(VERIFIED_TOKENS) >= VERIFIED_TOKENS_MAX:
        VERIFIED_TOKENS.clear()  # only live tokens get in: this means many projects, not an attack
    VERIFIED_TOKENS[key] = (now + seconds, found)
    return found


def forget_verified_tokens(**_signal) -> None:
    VERIFIED_TOKENS.clear()


def revoke_tokens(tokens) -> int:
    """Revoke a queryset of tokens; returns how many were live. This process stops accepting them at once."""
    count = tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget_verified_tokens()
    return count


def normalise_branch(branch: str) -> str:
    """`origin/dev`, `refs/heads/dev` or `refs/remotes/origin/dev` (Jenkins' GIT_BRANCH) -> `dev`."""
    for prefix in ("refs/heads/", "refs/remotes/origin/", "remotes/origin/", "origin/"):
        if branch.startswith(prefix):
            return branch[len(prefix):]
    return branch


def first(queryset):
    """The first row of a queryset, or None, without ordering unless the queryset asks for one (`.first()`
    orders by the primary key, a bare queryset by the model's default ordering)."""
    if not queryset.query.order_by:
        queryset = queryset.order_by()
    rows = list(queryset[:1])
    return rows[0] if rows else None


# --- Runs ------------------------------------------------------------------------------------------


def check_build_number(build_number: int) -> None:
    if not 1 <= build_number <= MAX_BUILD_NUMBER:
        raise CallbackError("build_number", f"must be between 1 and {MAX_BUILD_NUMBER}")


def locked_run(*, project: Project, build_number: int) -> tuple[PipelineRun, bool]:
    """The run of a build number, locked for this transaction; created (running, branch unknown) when new.

    Call inside `transaction.atomic`. Returns (run, created).
    """
    check_build_number(build_number)
    runs = PipelineRun.objects.select_for_update().filter(project=project, build_number=build_number)
    run = first(runs)
    if run is not None:
        return run, False
    try:
        with transaction.atomic():
            run = PipelineRun.objects.create(
                project=project, build_number=build_number, branch="", status=RunStatus.RUNNING,
                trigger=RunTrigger.JENKINS,
            )
    except IntegrityError:
        return runs.get(), False  # another callback created it meanwhile: carry on with that one
    return run, True


def merge_run(run: PipelineRun, fields: dict, *, now: datetime) -> list[str]:
    """Apply callback fields to a run by the ordering rules; returns the names of the fields changed."""
    changed: list[str] = []

    def put(name, value):
        if getattr(run, name) != value:
            setattr(run, name, value)
            changed.append(name)

    for name in RUN_TEXT_FIELDS:
        if fields.get(name):
            put(name, normalise_branch(fields[name]) if name == "branch" else fields[name])
    if fields.get("queue_id"):
        put("queue_id", fields["queue_id"])
    status = fields.get("status")
    if status and RUN_RANK.get(status, 2) >= RUN_RANK.get(run.status, 2):
        put("status", status)
    started = fields.get("started_at")
    if started and (run.started_at is None or started < run.started_at):
        put("started_at", started)
    finished = fields.get("finished_at")
    duration = fields.get("duration_ms")
    if duration and run.started_at and run.is_finished:
        finished = run.started_at + timedelta(milliseconds=duration)
    if finished:
        put("finished_at", finished)
    if run.status == RunStatus.RUNNING and run.started_at is None:
        put("started_at", now)
    if run.is_finished and run.finished_at is None:
        put("finished_at", now)
    return changed


def claim_run(*, project: Project, build_number: int, portal_run_id: int | None) -> tuple[PipelineRun, bool, dict]:
    """The locked run a run callback is about: the portal's own run when `portal_run_id` names one waiting
    for its build number, else the run of the build number, created if new. Returns (run, created, notes)."""
    check_build_number(build_number)
    if portal_run_id:
        portal_run = first(PipelineRun.objects.select_for_update().filter(project=project, pk=portal_run_id))
        if portal_run is not None and portal_run.build_number == build_number:
            return portal_run, False, {}
        if portal_run is not None and portal_run.build_number is None:
            notes = {"attached_to_portal_run": portal_run.pk}
            duplicate = first(
                PipelineRun.objects.select_for_update().filter(project=project, build_number=build_number)
            )
            if duplicate is not None:
                # Callbacks for this build came before the one naming the portal's run: fold that run in.
                notes["absorbed_run"] = duplicate.pk
                absorb(duplicate, into=portal_run)
            portal_run.build_number = build_number
            portal_run.save(update_fields=["build_number"])  # an insert racing us: IntegrityError, retried
            return portal_run, False, notes
        # Unknown, or already numbered (a replayed build keeps its parameters): a run of its own.
    runs = PipelineRun.objects.select_for_update().filter(project=project, build_number=build_number)
    run = first(runs)
    if run is not None:
        return run, False, {}
    return PipelineRun(project=project, build_number=build_number, branch="", trigger=RunTrigger.JENKINS), True, {}


def absorb(duplicate: PipelineRun, *, into: PipelineRun) -> None:
    """Move everything pointing at `duplicate` to `into`, merge its fields, and delete it."""
    for relation in PipelineRun._meta.related_objects:
        if relation.one_to_many or relation.one_to_one:
            name = relation.field.name
            relation.related_model._base_manager.filter(**{name: duplicate}).update(**{name: into})
    merge_run(into, {
        **{name: getattr(duplicate, name) for name in RUN_TEXT_FIELDS},
        "queue_id": duplicate.queue_id,
        "status": duplicate.status,
        "started_at": duplicate.started_at,
        "finished_at": duplicate.finished_at,
    }, now=timezone.now())
    into.save()
    duplicate.delete()


def upsert_run(
    *, project: Project, build_number: int, fields: dict, actor_label: str,
    adjust: Callable[[PipelineRun, dict], dict] | None = None,
) -> tuple[PipelineRun, bool]:
    """Create or update the run of a build number from a run callback. Returns (run, created).

    `fields`: branch, commit_sha, commit_title, commit_author, status, started_at, finished_at, build_url,
    queue_id, portal_run_id (attach this build to the portal's run), duration_ms (finished_at from the known
    start). `adjust(run, fields)`, if given, may rewrite the fields once the current run is known and locked.
    """
    fields = {key: value for key, value in fields.items() if key != "build_number"}
    portal_run_id = fields.pop("portal_run_id", None)
    now = timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                run, created, notes = claim_run(project=project, build_number=build_number,
                                                portal_run_id=portal_run_id)
                run_fields = adjust(run, fields) if adjust else fields
                if created:
                    run.status = run_fields.get("status") or RunStatus.RUNNING
                    merge_run(run, run_fields, now=now)
                    with transaction.atomic():
                        run.save(force_insert=True)
                    changed = ["created"]
                else:
                    changed = merge_run(run, run_fields, now=now)
                    if changed:
                        run.save(update_fields=changed)
                if changed or notes:
                    audit(project=project, actor_label=actor_label, action="run.created" if created else "run.updated",
                          target=run, data={"build_number": build_number, "status": run.status,
                                            "changed": changed, **notes})
                return run, created
        except IntegrityError:
            # A concurrent first callback inserted this build number (or the portal run's) meanwhile.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def get_run(*, project: Project, build_number: int) -> PipelineRun | None:
    if not 1 <= build_number <= MAX_BUILD_NUMBER:
        return None
    return first(
        PipelineRun.objects.filter(project=project, build_number=build_number).prefetch_related(
            "stages", "artifacts", "reports"
        )
    )


# --- Stages ----------------------------------------------------------------------------------------
# The ordering rules of a stage callback are written once, in SQL (`stage_merge_sql`): from the stage row as it
# is and the callback's fields, the row as it should be, step by step:
#
# 1. status: a status at least as far along as the current one replaces it (pending < running < finished;
#    a finished status may correct another); order and a non-empty log excerpt replace theirs; `started_at`
#    keeps the earliest known;
# 2. `finished_at` is taken once the stage is finished;
# 3. a finished stage (not skipped) given a duration gets its missing end from its start, or its start from
#    its end;
# 4. a running stage without a start starts now; a finished stage (not skipped) without an end ends now. A run
#    still queued goes to running once a stage is past pending.
#
# On PostgreSQL, updating a known stage of a known run is one statement, its own transaction: it locks the
# stage row (and so merges into its newest version), updates what changed, moves the run to running if it is
# still queued, and appends the audit event. Elsewhere (SQLite), the same merge is a SELECT and the writes follow
# in a transaction. A stage or run the portal does not know yet is created first, under the run's lock, then
# merged the same way.

STAGE_CHANGE_FLAGS = ("status", "order", "started_at", "finished_at", "log_excerpt")
# What the statement answers: the merged stage; the merge alone (SQLite) adds what the writes that follow need.
STAGE_RESULT = ("run_id", "new_run_status", "stage_id", "new_order", "new_status", "new_started_at", "new_finished_at")
STAGE_MERGE_RESULT = (*STAGE_RESULT, "run_status", *(f"{name}_changed" for name in STAGE_CHANGE_FLAGS))


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stage_merge_sql(*, wait_for_disk: bool = True) -> str:
    """WITH ... `changes`: one row (the stage merged with the callback) or none when the run or stage is
    unknown. Parameters are named: see `stage_params`. `wait_for_disk=False` (PostgreSQL): the transaction's
    commit does not wait for its WAL to reach the disk (synchronous_commit off, for this transaction only)."""
    postgres = connection.vendor == "postgresql"
    pending, running, skipped = (sql_literal(status) for status in (StageStatus.PENDING, StageStatus.RUNNING,
                                                                     StageStatus.SKIPPED))

    def param(name, postgres_type):
        # PostgreSQL binds on the server (prepared statements): say the type of a parameter that may be null.
        return f"CAST(%({name})s AS {postgres_type})" if postgres else f"%({name})s"

    def differs(a, b):
        return f"{a} IS DISTINCT FROM {b}" if postgres else f"{a} IS NOT {b}"

    def shifted(moment, sign):
        if postgres:
            return f"({moment} {sign} in_duration * INTERVAL '1 millisecond')"
        return connection.ops.combine_duration_expression(sign, [moment, "in_duration * 1000"])

    def rank(status):
        return f"CASE {status} WHEN {pending} THEN 0 WHEN {running} THEN 1 ELSE 2 END"

    # Lock the stage row (its newest version) for the merge; the run is only read, and locked by run_update only
    # while still queued: the writers that lock a run first (run callbacks, folding an early run into the portal's)
    # never hold a queued run and then wait for one of its stages, so the two orders cannot deadlock.
    lock = " FOR NO KEY UPDATE OF s" if postgres else ""
    r, s = {name: f"r.{column(PipelineRun, name)}" for name in ("id", "project", "build_number", "status")}, {
        name: f"s.{column(Stage, name)}" for name in ("id", "run", "name", "order", "status", "started_at",
                                                      "finished_at", "log_excerpt")}
    log = param("log_excerpt", "text")
    commit_mode = "" if wait_for_disk or not postgres else "set_config('synchronous_commit', 'off', true) AS commit,"
    # The callback's fields are read once, as columns (in_*), and the steps refer to them by name.
    return f"""WITH old AS (
  SELECT {commit_mode}
    {r["id"]} AS run_id, {r["status"]} AS run_status, {s["id"]} AS stage_id, {s["status"]} AS old_status,
    {s["order"]} AS old_order, {s["started_at"]} AS old_started_at, {s["finished_at"]} AS old_finished_at,
    ({log} <> '' AND {differs(log, s["log_excerpt"])}) AS log_excerpt_changed,
    {param("status", "text")} AS in_status, {param("order", "integer")} AS in_order,
    {param("started_at", "timestamptz")} AS in_started, {param("finished_at", "timestamptz")} AS in_finished,
    {param("duration_ms", "bigint")} AS in_duration, {param("now", "timestamptz")} AS in_now
  FROM {table(PipelineRun)} r JOIN {table(Stage)} s ON {s["run"]} = {r["id"]}
  WHERE {r["project"]} = %(project_id)s AND {r["build_number"]} = %(build_number)s AND {s["name"]} = %(name)s{lock}
), step1 AS (
  SELECT old.*,
    CASE WHEN in_status IS NOT NULL AND {rank("in_status")} >= {rank("old_status")} THEN in_status ELSE old_status END
      AS new_status,
    COALESCE(in_order, old_order) AS new_order,
    CASE WHEN in_started IS NOT NULL AND (old_started_at IS NULL OR in_started < old_started_at) THEN in_started
      ELSE old_started_at END AS started1
  FROM old
), step2 AS (
  SELECT step1.*,
    CASE WHEN in_finished IS NOT NULL AND new_status NOT IN ({pending}, {running}) THEN in_finished
      ELSE old_finished_at END AS finished1,
    new_status NOT IN ({pending}, {running}, {skipped}) AS finished_now
  FROM step1
), step3 AS (
  SELECT step2.*,
    CASE WHEN in_duration IS NOT NULL AND finished_now AND finished1 IS NULL AND started1 IS NOT NULL
      THEN {shifted("started1", "+")} ELSE finished1 END AS finished2,
    CASE WHEN in_duration IS NOT NULL AND finished_now AND started1 IS NULL AND finished1 IS NOT NULL
      THEN {shifted("finished1", "-")} ELSE started1 END AS started2
  FROM step2
), merged AS (
  SELECT step3.*,
    CASE WHEN new_status = {running} AND started2 IS NULL THEN in_now ELSE started2 END AS new_started_at,
    CASE WHEN finished_now AND finished2 IS NULL THEN in_now ELSE finished2 END AS new_finished_at,
    CASE WHEN run_status = {sql_literal(RunStatus.QUEUED)} AND new_status <> {pending}
      THEN {sql_literal(RunStatus.RUNNING)} ELSE run_status END AS new_run_status
  FROM step3
), changes AS (
  SELECT merged.*,
    new_status <> old_status AS status_changed, new_order <> old_order AS order_changed,
    {differs("new_started_at", "old_started_at")} AS started_at_changed,
    {differs("new_finished_at", "old_finished_at")} AS finished_at_changed
  FROM merged
)"""  # noqa: S608 - identifiers from the models' metadata, values are parameters


@functools.lru_cache(maxsize=8)
def stage_sql(vendor: str, *, wait_for_disk: bool = True) -> str:
    """The stage statement of a database: on PostgreSQL the merge, the writes and the audit event in one
    statement (data-modifying WITH); elsewhere the merge only."""
    if vendor != "postgresql":
        return compact(f"{stage_merge_sql()} SELECT {', '.join(STAGE_MERGE_RESULT)} FROM changes")  # noqa: S608
    changed_names = ", ".join(f"CASE WHEN {name}_changed THEN {sql_literal(name)} END" for name in STAGE_CHANGE_FLAGS)
    audit_data = "CAST(%(audit_data)s AS jsonb) || jsonb_build_object('status', c.new_status, 'changed', c.changed)"
    audit_columns = ", ".join(column(AuditEvent, name) for name in AUDIT_FIELDS)
    log_column = column(Stage, "log_excerpt")
    return compact(f"""{stage_merge_sql(wait_for_disk=wait_for_disk)}, summary AS (
  SELECT changes.*, to_jsonb(array_remove(ARRAY[{changed_names}], NULL)) AS changed FROM changes
), stage_update AS (
  UPDATE {table(Stage)} t SET {column(Stage, "status")} = c.new_status, {column(Stage, "order")} = c.new_order,
    {column(Stage, "started_at")} = c.new_started_at, {column(Stage, "finished_at")} = c.new_finished_at,
    {log_column} = CASE WHEN c.log_excerpt_changed THEN %(log_excerpt)s
      ELSE t.{log_column} END
  FROM summary c WHERE t.{column(Stage, "id")} = c.stage_id AND c.changed <> '[]'
), run_update AS (
  UPDATE {table(PipelineRun)} t SET {column(PipelineRun, "status")} = c.new_run_status
  FROM summary c WHERE t.{column(PipelineRun, "id")} = c.run_id AND c.new_run_status <> c.run_status
    AND t.{column(PipelineRun, "status")} = {sql_literal(RunStatus.QUEUED)}
), audit_insert AS (
  INSERT INTO {table(AuditEvent)} ({audit_columns})
  SELECT %(now)s, NULL, %(actor_label)s, %(project_id)s,
    'stage.upserted', 'stage', CAST(c.stage_id AS text), {audit_data}
  FROM summary c WHERE c.changed <> '[]' OR %(created)s
)
SELECT {", ".join(STAGE_RESULT)} FROM summary""")  # noqa: S608 - identifiers from the models' metadata, values are parameters


def stage_statement() -> str:
    """The PostgreSQL stage statement as the settings ask for it."""
    return stage_sql("postgresql", wait_for_disk=settings.STAGE_CALLBACKS_SYNCHRONOUS_COMMIT)


def compact(sql: str) -> str:
    """One space between words: psycopg caches the parsing of statements up to 4 KB only (its literals here
    hold no runs of spaces)."""
    return " ".join(sql.split())


def stage_params(*, project: Project, build_number: int, name: str, fields: dict, actor_label: str,
                 created: bool = False, run_created: bool = False) -> dict:
    adapt = connection.ops.adapt_datetimefield_value  # PostgreSQL: as is; SQLite: text
    params = {
        "project_id": project.pk,
        "build_number": build_number,
        "name": name,
        "status": fields.get("status") or None,
        "order": fields.get("order"),
        "started_at": adapt(fields.get("started_at")),
        "finished_at": adapt(fields.get("finished_at")),
        "duration_ms": fields.get("duration_ms"),
        "log_excerpt": (fields.get("log_excerpt") or "")[-LOG_EXCERPT_CHARS:],
        "now": adapt(timezone.now()),
        "actor_label": actor_label[:150],
        "created": created,
        "run_created": run_created,
    }
    params["audit_data"] = json.dumps(stage_audit_data(params))
    return params


def stage_audit_data(params: dict) -> dict:
    """What a stage's audit event says besides its status and changed fields."""
    data = {"build_number": params["build_number"], "name": params["name"]}
    data.update({key: True for key in ("created", "run_created") if params[key]})
    return data


def merge_stage_row(cursor, params: dict) -> dict | None:
    """Merge a callback into a known stage of a known run, write what changed and audit it, all or nothing
    (see above). Returns the merged row (STAGE_RESULT), or None when the run or the stage is unknown."""
    if cursor.db.vendor == "postgresql":  # the cursor's own connection: no proxy look-up per attribute
        cursor.execute(stage_statement(), params)  # written and audited by the statement itself
        row = cursor.fetchone()
        return None if row is None else dict(zip(STAGE_RESULT, row, strict=True))
    with transaction.atomic():
        cursor.execute(stage_sql(cursor.db.vendor), params)
        row = cursor.fetchone()
        if row is None:
            return None
        merged = dict(zip(STAGE_MERGE_RESULT, row, strict=True))
        changed = [name for name in STAGE_CHANGE_FLAGS if merged[f"{name}_changed"]]
        values = {"status": merged["new_status"], "order": merged["new_order"],
                  "started_at": merged["new_started_at"], "finished_at": merged["new_finished_at"],
                  "log_excerpt": params["log_excerpt"]}
        if changed:
            update_row(cursor, Stage, merged["stage_id"], {name: values[name] for name in changed})
        if merged["new_run_status"] != merged["run_status"]:
            update_row(cursor, PipelineRun, merged["run_id"], {"status": merged["new_run_status"]})
        if changed or params["created"]:
            data = {**stage_audit_data(params), "status": merged["new_status"], "changed": changed}
            audit(project=Project(pk=params["project_id"]), actor_label=params["actor_label"],
                  action="stage.upserted", target=Stage(pk=merged["stage_id"]), data=data, cursor=cursor)
    return merged


def update_row(cursor, model, pk, values: dict) -> None:
    """UPDATE named columns of one row to values already in the database's form (read from it)."""
    assignments = ", ".join(f"{column(model, name)} = %s" for name in values)
    cursor.execute(f"UPDATE {table(model)} SET {assignments} WHERE {column(model, 'id')} = %s",  # noqa: S608
                   [*values.values(), pk])


def upsert_stage(*, project: Project, build_number: int, name: str, fields: dict, actor_label: str) -> tuple[
    Stage, bool
]:
    """Create or update a stage of a run by name. Returns (stage, created).

    `fields`: status, order, started_at, finished_at, duration_ms, log_excerpt. The stage's `run` holds its id
    and status only (the rest deferred), so callers can read `stage.run.status` without another query.
    """
    check_build_number(build_number)
    params = functools.partial(stage_params, project=project, build_number=build_number, name=name, fields=fields,
                               actor_label=actor_label)
    with connection.cursor() as cursor:
        merged = merge_stage_row(cursor, params())  # the hot path: a known stage of a known run
    created = False
    if merged is None:
        with transaction.atomic(), connection.cursor() as cursor:
            run, run_created = locked_run(project=project, build_number=build_number)
            # A pending, empty stage merged with the callback is what the callback describes.
            _, created = Stage.objects.get_or_create(run=run, name=name, defaults={"status": StageStatus.PENDING})
            merged = merge_stage_row(cursor, params(created=created, run_created=run_created))
    return stage_from_merge(merged, name=name), created


def stage_from_merge(merged: dict, *, name: str) -> Stage:
    run = PipelineRun.from_db(DEFAULT_DB_ALIAS, ["id", "status"], [merged["run_id"], merged["new_run_status"]])
    stage = Stage.from_db(
        DEFAULT_DB_ALIAS, ["id", "run_id", "name", "order", "status", "started_at", "finished_at"],
        [merged["stage_id"], merged["run_id"], name, merged["new_order"], merged["new_status"],
         datetime_from_db(merged["new_started_at"]), datetime_from_db(merged["new_finished_at"])],
    )
    stage.run = run
    return stage


# --- Artifacts -------------------------------------------------------------------------------------


def upsert_artifact(
    *, project: Project, build_number: int, repository: str, tag: str, fields: dict, actor_label: str
) -> tuple[Artifact, bool]:
    """Create or update an image of a run by (repository, tag). `fields`: digest, registry. Returns (artifact,
    created). A known digest or registry is not blanked by a callback that omits it."""
    with transaction.atomic():
        run, run_created = locked_run(project=project, build_number=build_number)
        artifact = first(Artifact.objects.filter(run=run, repository=repository, tag=tag))
        created = artifact is None
        if created:
            artifact = Artifact(run=run, repository=repository, tag=tag)
            merge_artifact(artifact, fields)
            try:
                with transaction.atomic():
                    artifact.save(force_insert=True)
                changed = ["created"]
            except IntegrityError:
                # Cannot happen while the run is locked; kept so that a lock-less database cannot 500 here.
                artifact, created = Artifact.objects.get(run=run, repository=repository, tag=tag), False
                changed = merge_artifact(artifact, fields)
                if changed:
                    artifact.save(update_fields=changed)
        else:
            changed = merge_artifact(artifact, fields)
            if changed:
                artifact.save(update_fields=changed)
        if changed:
            data = {"build_number": build_number, "image": f"{repository}:{tag}", "digest": artifact.digest,
                    "changed": changed}
            if run_created:
                data["run_created"] = True
            audit(project=project, actor_label=actor_label, action="artifact.upserted", target=artifact, data=data)
    artifact.run = run
    return artifact, created


def merge_artifact(artifact: Artifact, fields: dict) -> list[str]:
    changed = []
    for name in ("digest", "registry"):
        value = fields.get(name)
        if value and getattr(artifact, name) != value:
            setattr(artifact, name, value)
            changed.append(name)
    return changed


# --- Reports ---------------------------------------------------------------------------------------


def upload_report(*, project: Project, build_number: int, file, original_name: str, kind: str, actor_label: str):
    """Store a raw report for a run (created if new) and queue its ingestion. Returns (report, created).

    The run row is not locked while the file is hashed and stored: a report changes nothing on the run.
    """
    check_build_number(build_number)
    with transaction.atomic():
        run = first(PipelineRun.objects.filter(project=project, build_number=build_number))
        run_created = False
        if run is None:
            run, run_created = locked_run(project=project, build_number=build_number)
        try:
            with transaction.atomic():
                report, created = receive_report(run=run, file=file, original_name=original_name, kind=kind)
        except IntegrityError:
            # The same file uploaded twice at once: the other upload stored it.
            digest, _ = hash_file(file)
            report, created = Report.objects.get(run=run, sha256=digest), False
        if created:
            data = {"build_number": build_number, "file": report.original_name, "kind": report.kind,
                    "sha256": report.sha256}
            if run_created:
                data["run_created"] = True
            audit(project=project, actor_label=actor_label, action="report.received", target=report, data=data)
    return report, created


# --- Deployments -----------------------------------------------------------------------------------


def record_run_deployment(
    *, project: Project, build_number: int, environment, status: str, images: list[dict],
    started_at: datetime | None, finished_at: datetime | None, log: str, actor_label: str,
):
    """Record what Jenkins deployed from a run (created if new) to an environment. Returns (deployment,
    created); see `environments.services.record_deployment`."""
    from environments.services import record_deployment

    with transaction.atomic():
        run, _ = locked_run(project=project, build_number=build_number)
        return record_deployment(
            project=project, run=run, environment=environment, status=status, images=images,
            started_at=started_at, finished_at=finished_at, log=log, actor_label=actor_label,
        )


# --- The Jenkins Notification plugin ---------------------------------------------------------------

NOTIFICATION_PHASES = {"QUEUED", "STARTED", "COMPLETED", "FINALIZED", "NONE"}
JENKINS_RESULTS = {
    "SUCCESS": RunStatus.SUCCESS,
    "FAILURE": RunStatus.FAILED,
    "UNSTABLE": RunStatus.UNSTABLE,
    "ABORTED": RunStatus.ABORTED,
    "NOT_BUILT": RunStatus.ABORTED,
}


@dataclass(frozen=True)
class Notification:
    """What the portal takes from a Notification plugin message."""

    job: str
    build_number: int
    phase: str
    status: str | None = None
    timestamp: datetime | None = None
    duration_ms: int | None = None
    queue_id: int | None = None
    build_url: str = ""
    branch: str = ""
    commit_sha: str = ""
    portal_run_id: int | None = None
    extra: dict = field(default_factory=dict)


def as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_timestamp(value) -> datetime | None:
    """Milliseconds since the epoch (the plugin's `long`), or an ISO 8601 string (its 1.x versions)."""
    millis = as_int(value)
    if millis is not None:
        if millis <= 0:
            return None
        try:
            return datetime.fromtimestamp(millis / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
    return None


def text_of(value, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def parse_notification(payload) -> Notification:
    """Validate a Notification plugin message (parsed JSON) before anything touches the database.

    Unknown fields are ignored (the plugin sends what it sends, by version); a known field of the wrong type is
    ignored too, except `build.number` and `build.phase`, without which the message means nothing.
    """
    if not isinstance(payload, dict):
        raise CallbackError("body", "expected a JSON object")
    build = payload.get("build")
    if not isinstance(build, dict):
        raise CallbackError("build", "expected an object")
    number = as_int(build.get("number"))
    if number is None or not 1 <= number <= MAX_BUILD_NUMBER:
        raise CallbackError("build.number", f"expected a build number between 1 and {MAX_BUILD_NUMBER}")
    phase = build.get("phase")
    if not isinstance(phase, str) or phase.upper() not in NOTIFICATION_PHASES:
        raise CallbackError("build.phase", f"expected one of {', '.join(sorted(NOTIFICATION_PHASES))}")
    status = build.get("status")
    status = JENKINS_RESULTS.get(status.upper()) if isinstance(status, str) else None
    duration = as_int(build.get("duration"))
    queue_id = as_int(build.get("queue_id"))
    build_url = text_of(build.get("full_url"), 500)
    if not build_url.startswith(("http://", "https://")):
        build_url = ""
    scm = build.get("scm") if isinstance(build.get("scm"), dict) else {}
    parameters = build.get("parameters") if isinstance(build.get("parameters"), dict) else {}
    commit = text_of(scm.get("commit"), 64)
    return Notification(
        job=text_of(payload.get("name"), 200),
        build_number=number,
        phase=phase.upper(),
        status=status,
        timestamp=parse_timestamp(build.get("timestamp")),
        duration_ms=duration if duration and duration > 0 else None,
        queue_id=queue_id if queue_id and 0 < queue_id <= 9_223_372_036_854_775_807 else None,
        build_url=build_url,
        branch=normalise_branch(text_of(scm.get("branch"), 255)),
        commit_sha=commit if all(c in "0123456789abcdefABCDEF" for c in commit) else "",
        portal_run_id=as_int(parameters.get("PORTAL_RUN_ID")) or None,
    )


def notification_fields(event: Notification, run: PipelineRun) -> dict:
    """The run fields a notification sets, given the run as the portal knows it.

    Timestamps follow the plugin's JobListener: QUEUED and STARTED carry the build's start (scheduled) time,
    COMPLETED its end (start + duration), FINALIZED the moment it was finalised (later than the end), and
    `duration` is the build's duration once completed.
    """
    fields = {"branch": event.branch, "commit_sha": event.commit_sha, "build_url": event.build_url,
              "queue_id": event.queue_id}
    stamp, duration = event.timestamp, event.duration_ms
    if event.phase == "QUEUED":
        fields["status"] = RunStatus.QUEUED
    elif event.phase == "STARTED":
        fields["status"] = RunStatus.RUNNING
        fields["started_at"] = stamp
    elif event.phase in ("COMPLETED", "FINALIZED"):
        fields["status"] = event.status
        if event.phase == "COMPLETED":
            fields["finished_at"] = stamp
            if stamp and duration:
                fields["started_at"] = stamp - timedelta(milliseconds=duration)
        elif run.started_at and duration:
            fields["duration_ms"] = duration  # the exact end: known start + duration
        elif run.finished_at is None and stamp:
            fields["finished_at"] = stamp
            if duration:
                fields["started_at"] = stamp - timedelta(milliseconds=duration)
    return fields


def apply_notification(*, project: Project, payload, actor_label: str) -> PipelineRun:
    """Apply a Jenkins Notification plugin message to the run of its build. Raises CallbackError when the
    message cannot be understood."""
    event = parse_notification(payload)
    base = {"portal_run_id": event.portal_run_id}
    run, _ = upsert_run(
        project=project, build_number=event.build_number, fields=base, actor_label=actor_label,
        adjust=lambda run, fields: notification_fields(event, run),
    )
    return run
