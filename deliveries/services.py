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
the unique constraint inside a savepoint, and it carries on as an update.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
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
STAGE_RANK = {StageStatus.PENDING: 0, StageStatus.RUNNING: 1}  # every other status is finished: 2


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
# A farm of Jenkins agents reports every stage start and finish: the stage update runs a handful of short
# statements written once from the models' metadata, without the ORM's query compilation (which costs several
# times the database round trips here). Rows read this way become model instances through `Model.from_db`,
# so that unread fields are deferred and a `save()` can only write what was read.

TOKEN_HOT_FIELDS = ("id", "project", "name", "prefix", "token_hash", "last_used_at")
PROJECT_HOT_FIELDS = ("id", "name", "slug")
RUN_HOT_FIELDS = ("id", "project", "build_number", "status")
STAGE_HOT_FIELDS = ("id", "run", "name", "order", "status", "started_at", "finished_at", "log_excerpt")
AUDIT_FIELDS = ("created_at", "actor", "actor_label", "project", "action", "target_type", "target_id", "data")


@functools.lru_cache(maxsize=4)
def hot_sql(vendor: str) -> dict[str, str]:
    quote = connection.ops.quote_name

    def table(model):
        return quote(model._meta.db_table)

    def columns(model, names):
        return ", ".join(quote(model._meta.get_field(name).column) for name in names)

    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    # Identifiers come from the models' metadata, quoted; every value is a parameter.
    run_filter = f"{quote('project_id')} = %s AND {quote('build_number')} = %s{lock}"
    stage_filter = f"{quote('run_id')} = %s AND {quote('name')} = %s"
    placeholders = ", ".join(["%s"] * len(AUDIT_FIELDS))
    token_columns = ", ".join(
        [f"t.{quote(ProjectToken._meta.get_field(name).column)}" for name in TOKEN_HOT_FIELDS]
        + [f"p.{quote(Project._meta.get_field(name).column)}" for name in PROJECT_HOT_FIELDS]
    )
    token_join = f"{table(ProjectToken)} t INNER JOIN {table(Project)} p ON p.{quote('id')} = t.{quote('project_id')}"
    token_filter = f"t.{quote('prefix')} = %s AND t.{quote('revoked_at')} IS NULL"
    # The run and its stage, both locked, in one statement: PostgreSQL locks the run row first (FROM order, as
    # every other writer does), and hands back the newest version of a stage row another callback just updated.
    run_stage_columns = ", ".join(
        [f"r.{quote(PipelineRun._meta.get_field(name).column)}" for name in RUN_HOT_FIELDS]
        + [f"s.{quote(Stage._meta.get_field(name).column)}" for name in STAGE_HOT_FIELDS]
    )
    run_stage_join = f"{table(PipelineRun)} r INNER JOIN {table(Stage)} s ON s.{quote('run_id')} = r.{quote('id')}"
    run_stage_filter = (f"r.{quote('project_id')} = %s AND r.{quote('build_number')} = %s "
                        f"AND s.{quote('name')} = %s{lock}")
    return {
        "run_stage": f"SELECT {run_stage_columns} FROM {run_stage_join} WHERE {run_stage_filter}",  # noqa: S608
        "token": f"SELECT {token_columns} FROM {token_join} WHERE {token_filter}",  # noqa: S608
        "run": f"SELECT {columns(PipelineRun, RUN_HOT_FIELDS)} FROM {table(PipelineRun)} WHERE {run_filter}",  # noqa: S608
        "stage": f"SELECT {columns(Stage, STAGE_HOT_FIELDS)} FROM {table(Stage)} WHERE {stage_filter}",  # noqa: S608
        "audit": f"INSERT INTO {table(AuditEvent)} ({columns(AuditEvent, AUDIT_FIELDS)}) VALUES ({placeholders})",  # noqa: S608
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


def run_from_row(row) -> PipelineRun:
    return PipelineRun.from_db(connection.alias, attnames(PipelineRun, RUN_HOT_FIELDS), row)


def stage_from_row(row) -> Stage:
    row = list(row)
    row[5], row[6] = datetime_from_db(row[5]), datetime_from_db(row[6])
    return Stage.from_db(connection.alias, attnames(Stage, STAGE_HOT_FIELDS), row)


def fetch_run_and_stage(cursor, *, project: Project, build_number: int, name: str):
    """(run, stage), both locked, when both exist; (None, None) otherwise."""
    cursor.execute(hot_sql(connection.vendor)["run_stage"], [project.pk, build_number, name])
    row = cursor.fetchone()
    if row is None:
        return None, None
    count = len(RUN_HOT_FIELDS)
    return run_from_row(row[:count]), stage_from_row(row[count:])


def fetch_locked_run(cursor, *, project: Project, build_number: int) -> PipelineRun | None:
    """The run of a build number (id, project, build number, status; the rest deferred), locked."""
    cursor.execute(hot_sql(connection.vendor)["run"], [project.pk, build_number])
    row = cursor.fetchone()
    return None if row is None else run_from_row(row)


def fetch_stage(cursor, *, run_id: int, name: str) -> Stage | None:
    cursor.execute(hot_sql(connection.vendor)["stage"], [run_id, name])
    row = cursor.fetchone()
    return None if row is None else stage_from_row(row)


def update_row(instance, names: list[str], *, cursor=None) -> None:
    """UPDATE the named fields of a row, as `save(update_fields=names)` would, in one statement."""
    meta, quote = instance._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields]
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    if cursor is not None:
        cursor.execute(sql, [*params, instance.pk])
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, instance.pk])


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


def stage_rank(status: str) -> int:
    return STAGE_RANK.get(status, 2)


def merge_stage(stage: Stage, fields: dict, *, now: datetime) -> list[str]:
    """Apply stage callback fields by the ordering rules; returns the names of the fields changed."""
    changed: list[str] = []

    def put(name, value):
        if getattr(stage, name) != value:
            setattr(stage, name, value)
            changed.append(name)

    status = fields.get("status")
    if status and stage_rank(status) >= stage_rank(stage.status):
        put("status", status)
    if fields.get("order") is not None:
        put("order", fields["order"])
    started = fields.get("started_at")
    if started and (stage.started_at is None or started < stage.started_at):
        put("started_at", started)
    finished = fields.get("finished_at")
    if finished and stage_rank(stage.status) == 2:
        put("finished_at", finished)
    finished_now = stage_rank(stage.status) == 2 and stage.status != StageStatus.SKIPPED
    duration = fields.get("duration_ms")
    if duration is not None and finished_now:
        if stage.finished_at is None and stage.started_at is not None:
            put("finished_at", stage.started_at + timedelta(milliseconds=duration))
        elif stage.started_at is None and stage.finished_at is not None:
            put("started_at", stage.finished_at - timedelta(milliseconds=duration))
    if stage.status == StageStatus.RUNNING and stage.started_at is None:
        put("started_at", now)
    if finished_now and stage.finished_at is None:
        put("finished_at", now)
    log = fields.get("log_excerpt")
    if log:
        put("log_excerpt", log[-LOG_EXCERPT_CHARS:])
    return changed


def upsert_stage(*, project: Project, build_number: int, name: str, fields: dict, actor_label: str) -> tuple[
    Stage, bool
]:
    """Create or update a stage of a run by name. Returns (stage, created).

    `fields`: status, order, started_at, finished_at, duration_ms, log_excerpt. The stage's `run` is the
    locked run (its status loaded), so callers can read `stage.run.status` without another query.

    Updating a known stage of a known run is the hot path: lock the run and read the stage, update the stage,
    audit it: three statements in the transaction.
    """
    check_build_number(build_number)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        run, stage = fetch_run_and_stage(cursor, project=project, build_number=build_number, name=name)
        run_created = False
        if run is None:
            run = fetch_locked_run(cursor, project=project, build_number=build_number)
            if run is None:
                run, run_created = locked_run(project=project, build_number=build_number)
            stage = fetch_stage(cursor, run_id=run.pk, name=name)
        created = stage is None
        if created:
            stage = Stage(run=run, name=name, status=fields.get("status") or StageStatus.PENDING)
            merge_stage(stage, fields, now=now)
            try:
                with transaction.atomic():
                    stage.save(force_insert=True)
                changed = ["created"]
            except IntegrityError:
                # Cannot happen while the run is locked; kept so that a lock-less database cannot 500 here.
                stage, created = Stage.objects.get(run=run, name=name), False
                changed = merge_stage(stage, fields, now=now)
                if changed:
                    update_row(stage, changed, cursor=cursor)
        else:
            changed = merge_stage(stage, fields, now=now)
            if changed:
                update_row(stage, changed, cursor=cursor)
        if stage.status != StageStatus.PENDING and run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING  # a stage started: the run is off the queue
            update_row(run, ["status"], cursor=cursor)
        if changed:
            data = {"build_number": build_number, "name": name, "status": stage.status, "changed": changed}
            if run_created:
                data["run_created"] = True
            audit(project=project, actor_label=actor_label, action="stage.upserted", target=stage, data=data,
                  cursor=cursor)
    stage.run = run
    return stage, created


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
