"""Writes of the deliveries app for Jenkins callbacks: runs, stages and artifacts.

Every callback is an upsert that tolerates retries, duplicates and any order:

- statuses only move forward (deliveries.statuses: queued < running < finished; pending < running < finished
  for stages); a finished status may be corrected by another finished one, never reopened by a late "running";
- a known timestamp is never replaced by nothing; `started_at` keeps the earliest known;
- a callback for a build number the portal has not seen creates the run (branch "" and status running until
  the run callback says more); a child callback never changes a finished run's status;
- the same request twice writes nothing the second time (no row, no audit event).

Each write runs in one transaction holding the run's row lock (`select_for_update`), so concurrent callbacks
for the same run are serialised on PostgreSQL (SQLite serialises writers anyway: IMMEDIATE transactions). The
first callbacks for a new build number may still race to insert it: the loser's insert fails on the unique
constraint inside a savepoint, and it carries on with the winner's run. Reports and deployments are the
scanners' and environments' services, which build on these (`locked_run`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from deliveries.audit import audit
from deliveries.models import (
    Artifact,
    PipelineRun,
    Project,
    ProjectToken,
    RunStatus,
    RunTrigger,
    Stage,
    StageStatus,
)
from deliveries.statuses import RUN_ORDER, STAGE_ORDER
from portal.inputs import DURATION_RANGE, MOMENT_RANGE, ascii_int, duration_in_range, moment_in_range
from portal.queries import first, update_row

MAX_BUILD_NUMBER = 2_147_483_647
LOG_EXCERPT_CHARS = 10_000
RUN_TEXT_FIELDS = ("branch", "commit_sha", "commit_title", "commit_author", "build_url")
# What a finished run was built from and where: set once known, never changed afterwards by a callback.
RUN_IDENTITY_FIELDS = ("branch", "commit_sha", "build_url")


class CallbackError(ValueError):
    """A callback that cannot be applied; `field` names the offending input."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class CallbackConflict(CallbackError):
    """A callback that contradicts what the portal knows (another job's build, a finished run's identity):
    refused, nothing changed. `fields` maps each offending input to why."""

    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        field, message = next(iter(fields.items()))
        super().__init__(field, message)


def actor_label_of(token: ProjectToken) -> str:
    return f"{token.name} (dp_{token.prefix})"[:150]


class Changes(list):
    """The names of the fields a merge changed, in the order they changed; `put` sets a field if it differs."""

    def __init__(self, row):
        super().__init__()
        self.row = row

    def put(self, name: str, value) -> None:
        if getattr(self.row, name) != value:
            setattr(self.row, name, value)
            if name not in self:
                self.append(name)


# Verified tokens, per process, for API_TOKEN_CACHE_SECONDS: a farm of agents calling back does not look up
# the token with its project and hash it on every request. Keyed by the token's hash; only tokens that matched get
# in. Whether a remembered token is still live is read on every request (one read by primary key), so a
# revocation, wherever it is made, applies in every process before the admin answers.
VERIFIED_TOKENS: dict[str, tuple[float, ProjectToken]] = {}
VERIFIED_TOKENS_MAX = 1024


def verified_token(token: str) -> ProjectToken | None:
    """`ProjectToken.find`, its row remembered for a few seconds, its revocation never."""
    seconds = settings.API_TOKEN_CACHE_SECONDS
    if seconds <= 0:
        return ProjectToken.find(token)
    key, now = ProjectToken.hash_token(token), time.monotonic()
    remembered = VERIFIED_TOKENS.get(key)
    if remembered is not None and remembered[0] > now:
        if ProjectToken.is_live(remembered[1].pk):
            return remembered[1]
        VERIFIED_TOKENS.pop(key, None)
        return None
    found = ProjectToken.find(token)
    if found is None:
        VERIFIED_TOKENS.pop(key, None)
        return None
    if len(VERIFIED_TOKENS) >= VERIFIED_TOKENS_MAX:
        VERIFIED_TOKENS.clear()  # only live tokens get in: this means many projects, not an attack
    VERIFIED_TOKENS[key] = (now + seconds, found)
    return found


def forget_verified_tokens(**_signal) -> None:
    VERIFIED_TOKENS.clear()


def revoke_tokens(tokens, *, actor=None, actor_label: str = "") -> int:
    """Revoke a queryset of tokens, each revocation audited; returns how many were live. Every process refuses
    them from the commit on (see verified_token)."""
    now = timezone.now()
    with transaction.atomic():
        live = list(tokens.filter(ProjectToken.LIVE).select_related("project").select_for_update(of=("self",)))
        for token in live:
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            audit(project=token.project, actor=actor, actor_label=actor_label, action="token.revoked",
                  target=token, data={"name": token.name, "prefix": token.prefix})
    forget_verified_tokens()
    return len(live)


def normalise_branch(branch: str) -> str:
    """`origin/dev`, `refs/heads/dev` or `refs/remotes/origin/dev` (Jenkins' GIT_BRANCH) -> `dev`."""
    for prefix in ("refs/heads/", "refs/remotes/origin/", "remotes/origin/", "origin/"):
        if branch.startswith(prefix):
            return branch[len(prefix):]
    return branch


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
    run = PipelineRun(project=project, build_number=build_number, branch="", trigger=RunTrigger.JENKINS)
    merge_run(run, {"status": RunStatus.RUNNING}, now=timezone.now())
    try:
        with transaction.atomic():
            run.save(force_insert=True)
    except IntegrityError:
        return runs.get(), False  # another callback created it meanwhile: carry on with that one
    return run, True


def merge_run(run: PipelineRun, fields: dict, *, now: datetime) -> list[str]:
    """Apply callback fields to a run by the ordering rules; returns the names of the fields changed."""
    changes = Changes(run)
    put = changes.put
    for name in RUN_TEXT_FIELDS:
        if fields.get(name):
            put(name, normalise_branch(fields[name]) if name == "branch" else fields[name])
    if fields.get("queue_id"):
        put("queue_id", fields["queue_id"])
    if fields.get("committed_at"):
        put("committed_at", fields["committed_at"])
    status = fields.get("status")
    if status and RUN_ORDER.allows(run.status, status):
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
    return list(changes)


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


def identity_contradictions(run: PipelineRun, fields: dict) -> dict[str, dict]:
    """The identity fields of a finished run that `fields` would change: {name: {"kept", "refused"}}. Filling
    in a blank is no contradiction; a commit differing only in case is the same commit."""
    if not run.is_finished:
        return {}
    contradicted = {}
    for name in RUN_IDENTITY_FIELDS:
        kept, given = getattr(run, name), fields.get(name)
        if not kept or not given:
            continue
        given = normalise_branch(given) if name == "branch" else given
        if (kept.lower() != given.lower()) if name == "commit_sha" else (kept != given):
            contradicted[name] = {"kept": kept, "refused": given}
    return contradicted


def refuse_identity_change(*, run: PipelineRun, contradicted: dict, actor_label: str) -> CallbackConflict:
    """Audit a callback that tried to rewrite a finished run's identity (in a transaction of its own: the
    callback's own was rolled back) and return the error to raise."""
    audit(project_id=run.project_id, actor_label=actor_label, action="run.identity_refused", target=run,
          data={"build_number": run.build_number, "status": run.status, "refused": contradicted})
    return CallbackConflict({
        name: f"this run has finished with {name} {values['kept']!r}: it cannot become {values['refused']!r}"
        for name, values in contradicted.items()
    })


def upsert_run(
    *, project: Project, build_number: int, fields: dict, actor_label: str,
    adjust: Callable[[PipelineRun, dict], dict] | None = None,
) -> tuple[PipelineRun, bool]:
    """Create or update the run of a build number from a run callback. Returns (run, created).

    `fields`: branch, commit_sha, commit_title, commit_author, status, started_at, finished_at, build_url,
    queue_id, portal_run_id (attach this build to the portal's run), duration_ms (finished_at from the known
    start). `adjust(run, fields)`, if given, may rewrite the fields once the current run is known and locked.
    Raises CallbackConflict, having changed nothing but the audit log, when the fields contradict a finished
    run's identity (branch, commit, build URL).
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
                contradicted = identity_contradictions(run, run_fields)
                if contradicted:
                    raise IdentityContradicted(run, contradicted)
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
                    audit(project=project, actor_label=actor_label,
                          action="run.created" if created else "run.updated", target=run,
                          data={"build_number": build_number, "status": run.status, "changed": changed, **notes})
                return run, created
        except IntegrityError:
            # A concurrent first callback inserted this build number (or the portal run's) meanwhile.
            if attempt == 2:
                raise
        except IdentityContradicted as exc:  # rolled back: anything claim_run did is undone too
            raise refuse_identity_change(run=exc.run, contradicted=exc.contradicted,
                                         actor_label=actor_label) from None
    raise AssertionError("unreachable")


class IdentityContradicted(Exception):
    """Inside upsert_run only: leaves its transaction so that the refusal is audited after the rollback."""

    def __init__(self, run: PipelineRun, contradicted: dict):
        self.run, self.contradicted = run, contradicted


def get_run(*, project: Project, build_number: int) -> PipelineRun | None:
    if not 1 <= build_number <= MAX_BUILD_NUMBER:
        return None
    return first(
        PipelineRun.objects.filter(project=project, build_number=build_number).prefetch_related(
            "stages", "artifacts", "reports"
        )
    )


# --- Stages ----------------------------------------------------------------------------------------


def upsert_stage(*, project: Project, build_number: int, name: str, fields: dict, actor_label: str) -> tuple[
    Stage, bool
]:
    """Create or update a stage of a run by name. Returns (stage, created).

    `fields`: status, order, started_at, finished_at, duration_ms, log_excerpt. A run still queued goes to
    running once one of its stages is past pending, and a run not finished starts no later than its stages. The
    stage's `run` is the run as it now is, so callers can read `stage.run.status`.
    """
    check_build_number(build_number)
    now = timezone.now()
    with transaction.atomic():
        stage = locked_stage(project=project, build_number=build_number, name=name)
        run_created = created = False
        if stage is not None:
            run = stage.run
        else:
            run, run_created = locked_run(project=project, build_number=build_number)
            # Read after the run's lock is held: no other callback can insert this stage meanwhile.
            stage = first(Stage.objects.filter(run=run, name=name))
            created = stage is None
            if created:
                # A pending, empty stage merged with the callback is what the callback describes.
                stage = Stage(run=run, name=name, status=StageStatus.PENDING)
        changed = merge_stage(stage, fields, now=now)
        if created:
            stage.save(force_insert=True)
        elif changed:
            update_row(stage, changed)  # every callback for a known stage: the statement is made once
        run_changed = []
        if stage.status != StageStatus.PENDING and not run.is_finished:
            run_changed = merge_run(run, {"status": RunStatus.RUNNING, "started_at": stage.started_at}, now=now)
            if run_changed:
                run.save(update_fields=run_changed)
        if changed or created or run_changed:
            data = {"build_number": build_number, "name": name, "status": stage.status, "changed": changed}
            if run_changed and not run_created:
                data["run_changed"] = run_changed
            data.update({key: True for key, on in (("created", created), ("run_created", run_created)) if on})
            audit(project=project, actor_label=actor_label, action="stage.upserted", target=stage, data=data)
    stage.run = run
    return stage, created


def locked_stage(*, project: Project, build_number: int, name: str) -> Stage | None:
    """The stage of a run by name, with its run, both rows locked for this transaction in one statement (the
    run's first, as every other write takes them); None while either does not exist.

    Both rows are locked, not only the run's: a statement that waits for a lock reads anew the rows it locks,
    and only those, so a stage read beside its locked run could be the version from before the wait.

    Written in SQL rather than built by the ORM, because it is the hottest read of the portal: every callback
    for a known stage runs it, and Django building it (a join, two models, both rows locked) cost over a
    third of the callback's CPU, 2.7 of 8.0 million instructions (benchmarks/callbacks_instructions.py), the
    largest part of the gap to the rate target of benchmarks/callbacks.py. It holds no rule (those stay in
    merge_stage and merge_run); its values go through Django's converters, as the ORM's would.
    """
    sql, converters = locked_stage_statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk, build_number, name])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = next(plain_compiler().apply_converters([row], converters))
    split = len(LOCKED_STAGE_FIELDS)
    stage = Stage.from_db(connection.alias, LOCKED_STAGE_FIELDS, row[:split])
    stage.run = PipelineRun.from_db(connection.alias, LOCKED_RUN_FIELDS, row[split:])
    return stage


# What a stage callback reads of an existing stage and its run (merge_stage, merge_run's status and times, the
# answer), each in its model's field order, as Model.from_db takes them.
LOCKED_STAGE_FIELDS = ("id", "run_id", "name", "order", "status", "started_at", "finished_at", "log_excerpt")
LOCKED_RUN_FIELDS = ("id", "project_id", "build_number", "status", "started_at", "finished_at")
LOCKED_STAGE_COLUMNS = [
    *(Stage._meta.get_field(name).get_col("s") for name in LOCKED_STAGE_FIELDS),
    *(PipelineRun._meta.get_field(name).get_col("r") for name in LOCKED_RUN_FIELDS),
]


@functools.cache
def locked_stage_statement(vendor: str) -> tuple[str, dict]:
    """The SQL of locked_stage on this database, and Django's converters of each column that has any, as the ORM
    would apply them (SQLite's datetimes have no time zone; PostgreSQL needs none here). Made once per database
    backend: both depend on it and the settings, not on the connection.

    The run's row is locked first, then the stage's; SQLite takes no row locks: its IMMEDIATE transactions
    serialise writers."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"{column.alias}.{quote(column.target.column)}" for column in LOCKED_STAGE_COLUMNS)
    # Names from the models, values bound as parameters.
    sql = (f"SELECT {columns} FROM {PipelineRun._meta.db_table} r JOIN {Stage._meta.db_table} s ON s.run_id = r.id"  # noqa: S608
           " WHERE r.project_id = %s AND r.build_number = %s AND s.name = %s")
    if connection.features.has_select_for_update_of:
        sql += " " + connection.ops.for_update_sql(of=("r", "s"))
    return sql, plain_compiler().get_converters(LOCKED_STAGE_COLUMNS)


def plain_compiler():
    """Django's compiler of this connection, for its converters only, as its raw querysets use it (no query)."""
    return connection.ops.compiler("SQLCompiler")(None, connection, connection.alias)


STAGE_FIELDS = ("status", "order", "started_at", "finished_at", "log_excerpt")
STAGE_WITHOUT_END = {StageStatus.PENDING, StageStatus.RUNNING, StageStatus.SKIPPED}


def merge_stage(stage: Stage, fields: dict, *, now: datetime) -> list[str]:
    """Apply callback fields to a stage by the ordering rules; returns the names of the fields changed."""
    changes = Changes(stage)
    status = fields.get("status")
    if status and STAGE_ORDER.allows(stage.status, status):
        changes.put("status", status)
    if fields.get("order") is not None:
        changes.put("order", fields["order"])
    log = (fields.get("log_excerpt") or "")[-LOG_EXCERPT_CHARS:]
    if log:
        changes.put("log_excerpt", log)
    started, finished, duration = fields.get("started_at"), fields.get("finished_at"), fields.get("duration_ms")
    if started and (stage.started_at is None or started < stage.started_at):
        changes.put("started_at", started)
    if finished and stage.status not in (StageStatus.PENDING, StageStatus.RUNNING):
        changes.put("finished_at", finished)
    ends = stage.status not in STAGE_WITHOUT_END  # a skipped stage has neither start nor end
    if duration and ends and stage.finished_at is None and stage.started_at:
        changes.put("finished_at", stage.started_at + timedelta(milliseconds=duration))
    elif duration and ends and stage.started_at is None and stage.finished_at:
        changes.put("started_at", stage.finished_at - timedelta(milliseconds=duration))
    if stage.status == StageStatus.RUNNING and stage.started_at is None:
        changes.put("started_at", now)
    if ends and stage.finished_at is None:
        changes.put("finished_at", now)
    return sorted(changes, key=STAGE_FIELDS.index)


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
            audit(project=project, actor_label=actor_label, action="artifact.upserted", target=artifact,
                  data=data)
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
    job_paths: tuple[str, ...] = ()  # the job's folder/name path, as each URL of the message gives it
    extra: dict = field(default_factory=dict)


def parse_timestamp(value) -> datetime | None:
    """Milliseconds since the epoch (the plugin's `long`), or an ISO 8601 string (its 1.x versions); None when
    it is neither. Raises CallbackError for a moment outside portal.inputs' range."""
    millis = ascii_int(value)
    if millis is not None:
        if millis <= 0:
            return None
        try:
            moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            moment = None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        moment = moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
    else:
        return None
    if moment is None or not moment_in_range(moment):
        raise CallbackError("build.timestamp", f"must be {MOMENT_RANGE}")
    return moment


def job_path_in_url(url) -> str | None:
    """`job/delivery/job/shop/` (the job's `url`), `job/delivery/job/shop/18/` (the build's) or a full URL with
    that inside -> `delivery/shop`; None when the URL names no job."""
    if not isinstance(url, str):
        return None
    path = urlsplit(url.strip()).path if "://" in url else url.strip()
    parts = path.strip("/").split("/")
    if "job" not in parts:
        return None
    parts = parts[parts.index("job"):]
    names = []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(unquote(parts[1]))
        parts = parts[2:]
    return "/".join(names) or None


def job_mismatch(event: Notification, job_path: str) -> str | None:
    """Why the message is not about the Jenkins job `job_path` (its name or a URL names another), or None."""
    job_path = job_path.strip("/")
    for named in event.job_paths:
        if named != job_path:
            return f"this message is about the Jenkins job {named!r}; this project's job is {job_path!r}"
    if event.job and event.job != job_path.rsplit("/", 1)[-1] and event.job != job_path:
        return f"this message is about the Jenkins job {event.job!r}; this project's job is {job_path!r}"
    if not event.job and not event.job_paths:
        return f"this message names no Jenkins job; this project's job is {job_path!r}"
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
    number = ascii_int(build.get("number"))
    if number is None or not 1 <= number <= MAX_BUILD_NUMBER:
        raise CallbackError("build.number", f"expected a build number between 1 and {MAX_BUILD_NUMBER}")
    phase = build.get("phase")
    if not isinstance(phase, str) or phase.upper() not in NOTIFICATION_PHASES:
        raise CallbackError("build.phase", f"expected one of {', '.join(sorted(NOTIFICATION_PHASES))}")
    status = build.get("status")
    status = JENKINS_RESULTS.get(status.upper()) if isinstance(status, str) else None
    duration = ascii_int(build.get("duration"))
    if duration is not None and not duration_in_range(duration):
        raise CallbackError("build.duration", f"must be {DURATION_RANGE}")
    queue_id = ascii_int(build.get("queue_id"))
    build_url = text_of(build.get("full_url"), 500)
    if not build_url.startswith(("http://", "https://")):
        build_url = ""
    scm = build.get("scm") if isinstance(build.get("scm"), dict) else {}
    parameters = build.get("parameters") if isinstance(build.get("parameters"), dict) else {}
    commit = text_of(scm.get("commit"), 64)
    urls = (payload.get("url"), build.get("url"), build.get("full_url"))
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
        portal_run_id=ascii_int(parameters.get("PORTAL_RUN_ID")) or None,
        job_paths=tuple(path for path in map(job_path_in_url, urls) if path),
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
    message cannot be understood, CallbackConflict when it is about another job than the project's (if it has
    one) or contradicts a finished run."""
    event = parse_notification(payload)
    mismatch = job_mismatch(event, project.jenkins_job_path) if project.jenkins_job_path else None
    if mismatch:
        raise CallbackConflict({"name": mismatch})
    base = {"portal_run_id": event.portal_run_id}
    run, _ = upsert_run(
        project=project, build_number=event.build_number, fields=base, actor_label=actor_label,
        adjust=lambda run, fields: notification_fields(event, run),
    )
    return run
