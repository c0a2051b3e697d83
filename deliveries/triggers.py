"""Services that talk to Jenkins: start a run, follow it through the Jenkins queue, abort it.

A web request never waits on Jenkins: `request_run` and `request_abort` write the run and an audit event
and queue a task on commit; the tasks (deliveries.tasks) call `trigger_build` and `abort_build` here.
Those are safe to run twice: they look at what the run already holds before asking Jenkins anything,
and write with conditional updates so that a callback from Jenkins arriving meanwhile is never undone
(the REST API attaches the build to the run through the PORTAL_RUN_ID parameter; whichever comes first wins).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from deliveries import jenkins
from deliveries.audit import audit as write_audit
from deliveries.jenkins import JenkinsError
from deliveries.models import PipelineRun, Project, RunStatus, RunTrigger, Stage
from deliveries.services import JENKINS_RESULTS, upsert_run

logger = logging.getLogger(__name__)

# Bounded waits, all well under the django-q timeout (600 s): a task never outlives its lease. Worst case
# (every request timing out after jenkins.TIMEOUT_SECONDS): 3 triggers of 2 requests + 6 s of backoff.
TRIGGER_ATTEMPTS = 3
TRIGGER_BACKOFF_SECONDS = 2.0  # doubled after each failed attempt: 2 s, 4 s
ABORT_ATTEMPTS = 3
# A queue item still waiting is looked at again after these many seconds, each look a task of its own queued by a
# one-off Schedule (no worker sleeps waiting on Jenkins): about 5 minutes in all. The default cluster's scheduler
# wakes every 30 s or so, which is soon enough: the build's own callback attaches it to the run anyway.
QUEUE_CHECK_DELAYS = (10, 20, 30, 60, 60, 60, 60)

ACTIVE = [RunStatus.QUEUED, RunStatus.RUNNING]


class TriggerRefused(Exception):
    """The portal cannot start (or stop) a run; the message says why, for the user."""


class AlreadyQueued(TriggerRefused):
    """The same branch and commit already wait in the queue: `run` is that run."""

    def __init__(self, message: str, *, run: PipelineRun):
        super().__init__(message)
        self.run = run


def sleep(seconds: float) -> None:
    time.sleep(seconds)  # a seam for tests


# --- From the web: record, audit, queue the task on commit -------------------------------------------------


def request_run(*, project, branch: str, commit: str = "", user, retry_of: PipelineRun | None = None,
                trigger: str = RunTrigger.PORTAL) -> PipelineRun:
    if not jenkins.is_configured():
        raise TriggerRefused("Jenkins is not configured (JENKINS_URL is empty): the portal cannot start runs.")
    if not project.jenkins_job_path:
        raise TriggerRefused(f"{project.name} has no Jenkins job path: an administrator sets it in the admin.")
    with transaction.atomic():
        # One trigger of a project at a time decides whether its branch and commit already wait in the queue.
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk"))
        queued = (PipelineRun.objects.filter(project=project, branch=branch, commit_sha=commit, status=RunStatus.QUEUED)
                  .order_by("created_at", "pk").first())
        if queued is not None:
            what = f"{branch} at {commit}" if commit else f"the head of {branch}"
            raise AlreadyQueued(
                f"A run of {what} is already queued: {queued.label}. It starts when Jenkins takes it; abort it"
                " to queue another.", run=queued)
        run = PipelineRun.objects.create(
            project=project,
            branch=branch,
            commit_sha=commit,
            trigger=trigger,
            triggered_by=user,
            status=RunStatus.QUEUED,
        )
        data = {"branch": branch, "commit": commit, **({"retry_of": retry_of.pk} if retry_of else {}),
                **({"trigger": trigger} if trigger != RunTrigger.PORTAL else {})}
        audit(run, user=user, action="run.requested", data=data)
        transaction.on_commit(partial(queue_task, "deliveries.tasks.trigger_run", run.pk, "trigger"))
    return run


def request_retry(*, run: PipelineRun, user) -> PipelineRun:
    """Trigger the branch and commit of a run whose trigger failed again, as a new run."""
    if run.status != RunStatus.TRIGGER_FAILED:
        status = run.get_status_display().lower()
        raise TriggerRefused(f"Only a run whose trigger failed can be retried; this one is {status}.")
    return request_run(project=run.project, branch=run.branch, commit=run.commit_sha, user=user, retry_of=run)


def close_run(*, run: PipelineRun, user, reason: str) -> None:
    """End a run by hand, in the portal only (Jenkins is not asked): for a run nothing will ever report on."""
    if not finish_aborted(run, reason=f"Closed by {user.get_username()}: {reason}", user=user, action="run.closed"):
        run.refresh_from_db(fields=["status"])
        raise TriggerRefused(f"This run has already finished ({run.get_status_display().lower()}): nothing to close.")


def request_abort(*, run: PipelineRun, user) -> None:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            status = run.get_status_display().lower()
            raise TriggerRefused(f"This run has already finished ({status}): nothing to abort.")
        audit(run, user=user, action="run.abort_requested", data={"status": run.status})
        transaction.on_commit(partial(queue_task, "deliveries.tasks.abort_run", run.pk, "abort"))


def queue_task(function: str, run_id: int, verb: str) -> None:
    async_task(function, run_id, task_name=f"{verb} run {run_id}")


def audit(run: PipelineRun, *, user=None, action: str, data: dict) -> None:
    write_audit(project_id=run.project_id, actor=user, actor_label="" if user else "portal", action=action,
                target=run, data=data)


# --- From the worker: talk to Jenkins ------------------------------------------------------------------


def trigger_build(*, run_id: int) -> PipelineRun:
    """Queue the run's build on Jenkins (unless done already), then follow its queue item."""
    run = PipelineRun.objects.select_related("project").get(pk=run_id)
    if run.is_finished or run.build_number is not None:
        return run
    if run.queue_id is None:
        try:
            queue_id = call_with_retries(
                lambda: jenkins.trigger(run.project.jenkins_job_path, branch=run.branch, commit=run.commit_sha,
                                        run_id=run.pk)
            )
        except JenkinsError as exc:
            fail_trigger(run, exc.reason)
            return reload(run)
        PipelineRun.objects.filter(pk=run.pk, queue_id__isnull=True).update(queue_id=queue_id)
    return follow_queue(run_id=run.pk)


def call_with_retries(call, *, attempts: int = TRIGGER_ATTEMPTS):
    """Call, retrying what may pass (Jenkins unreachable, 5xx) with a doubling wait; the rest fails at once."""
    delay = TRIGGER_BACKOFF_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except JenkinsError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            logger.warning("Jenkins call failed (attempt %s of %s): %s", attempt, attempts, exc.reason)
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def fail_trigger(run: PipelineRun, reason: str) -> None:
    with transaction.atomic():
        updated = PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED, build_number__isnull=True).update(
            status=RunStatus.TRIGGER_FAILED, status_reason=reason[:500], finished_at=timezone.now()
        )
        if updated:
            audit(run, action="run.trigger_failed", data={"reason": reason})


def follow_queue(*, run_id: int, check: int = 0) -> PipelineRun:
    """Look once at the run's queue item; while it still waits, look again later, through a one-off Schedule
    (deliveries.tasks.follow_queue), at most len(QUEUE_CHECK_DELAYS) times more.

    Giving up early loses nothing: the build's own callback attaches it to the run through PORTAL_RUN_ID.
    """
    run = PipelineRun.objects.select_related("project").get(pk=run_id)
    if look_at_queue(run):
        return reload(run)
    if check >= len(QUEUE_CHECK_DELAYS):
        logger.info("Run %s: still in the Jenkins queue after %s looks; its callback will attach it", run.pk, check + 1)
        return run
    name = f"Follow run {run.pk} in the Jenkins queue ({check + 1})"
    try:
        schedule("deliveries.tasks.follow_queue", run.pk, check + 1, name=name, schedule_type=Schedule.ONCE,
                 next_run=timezone.now() + timedelta(seconds=QUEUE_CHECK_DELAYS[check]))
    except IntegrityError:
        pass  # the same look is scheduled already (this task ran twice)
    return run


def look_at_queue(run: PipelineRun) -> bool:
    """Take the queue item's news, once: True when there is nothing more to follow (a build, a cancel, an end)."""
    if run.build_number is not None or run.queue_id is None:
        return True  # Jenkins' callback came first, or nothing was queued
    if run.status == RunStatus.ABORTED:
        try:
            stop_on_jenkins(run)  # aborted from the portal while the trigger was on its way
        except JenkinsError as exc:
            logger.warning("Run %s: could not stop what Jenkins queued: %s", run.pk, exc.reason)
        return True
    if run.is_finished:
        return True
    try:
        state = jenkins.queue_state(run.queue_id)
    except JenkinsError as exc:
        if not exc.retryable:
            logger.warning("Run %s: stopped following queue item %s: %s", run.pk, run.queue_id, exc.reason)
            return True
        return False  # unreachable for now: look again later
    if state.cancelled:
        finish_aborted(run, reason="The build was cancelled in the Jenkins queue.")
        return True
    if state.build_number is not None:
        attach_build(run, state.build_number, state.build_url)
        return True
    return False


def attach_build(run: PipelineRun, build_number: int, build_url: str) -> None:
    """Store the build the queue item became, unless a callback did, and never as a second run of that build."""
    taken = PipelineRun.objects.filter(project_id=run.project_id, build_number=build_number).exclude(pk=run.pk)
    if taken.exists():
        logger.warning("Run %s: build #%s is already recorded as another run", run.pk, build_number)
        return
    try:
        with transaction.atomic():
            PipelineRun.objects.filter(pk=run.pk, build_number__isnull=True).update(
                build_number=build_number, build_url=build_url[:500]
            )
            PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=timezone.now()
            )
    except IntegrityError:
        logger.warning("Run %s: build #%s was recorded by a callback meanwhile", run.pk, build_number)


def finish_aborted(run: PipelineRun, *, reason: str, user=None, action: str = "run.aborted") -> bool:
    with transaction.atomic():
        updated = PipelineRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(
            status=RunStatus.ABORTED, status_reason=reason[:500], finished_at=timezone.now()
        )
        if updated:
            audit(run, user=user, action=action, data={"reason": reason})
    return bool(updated)


def abort_build(*, run_id: int) -> PipelineRun:
    """Cancel the run's queue item or stop its build, then mark it aborted. A finished run is left alone."""
    run = PipelineRun.objects.select_related("project").get(pk=run_id)
    if run.is_finished:
        return run
    try:
        call_with_retries(lambda: stop_on_jenkins(run), attempts=ABORT_ATTEMPTS)
    except JenkinsError as exc:
        PipelineRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(
            status_reason=f"Could not abort: {exc.reason}"[:500]
        )
        return reload(run)
    finish_aborted(run, reason="Aborted from the portal.")
    return reload(run)


def stop_on_jenkins(run: PipelineRun) -> None:
    """Whatever Jenkins is doing for this run, stop it: cancel the queue item, or stop the build."""
    job_path = run.project.jenkins_job_path
    number = run.build_number
    if number is None and run.queue_id is not None:
        jenkins.cancel(run.queue_id)
        # Jenkins ignores a cancel once the item has left the queue: then it is a build to stop.
        try:
            state = jenkins.queue_state(run.queue_id)
        except JenkinsError as exc:
            if exc.status != 404:
                raise
            return  # forgotten by Jenkins: nothing left to stop
        if state.build_number is not None:
            number = state.build_number
            attach_build(run, state.build_number, state.build_url)
    if number is not None:
        jenkins.stop(job_path, number)


def reload(run: PipelineRun) -> PipelineRun:
    return PipelineRun.objects.select_related("project").get(pk=run.pk)


# --- The reconciler: runs that stopped reporting (a django-q2 Schedule runs it) ------------------------------

RECONCILE_BATCH = 50  # runs asked about per sweep: a sweep stays far below the task timeout
REASON_CHARS = 500  # PipelineRun.status_reason


def quiet_runs(*, since):
    """Queued or running runs Jenkins knows of (a queue item or a build) with no news since `since`: no start,
    no stage starting or ending, and not asked about by the reconciler. The longest unasked come first."""
    recent_stage = Stage.objects.filter(run=OuterRef("pk")).filter(Q(started_at__gte=since) | Q(finished_at__gte=since))
    return (
        PipelineRun.objects.filter(status__in=ACTIVE, created_at__lt=since)
        .filter(Q(build_number__isnull=False) | Q(queue_id__isnull=False))
        .exclude(project__jenkins_job_path="")
        .exclude(started_at__gte=since)
        .exclude(jenkins_checked_at__gte=since)
        .exclude(Exists(recent_stage))
        .select_related("project")
        .order_by(F("jenkins_checked_at").asc(nulls_first=True), "created_at", "pk")
    )


def reconcile_runs(*, quiet_for: timedelta | None = None) -> dict[str, int]:
    """Ask Jenkins about the runs that stopped reporting and take its word. Returns counts, for the task's result.

    Jenkins unreachable (or refusing the portal): nothing changes, the sweep stops and the next one tries again.
    """
    counts = {"asked": 0, "finished": 0, "still_going": 0}
    if not jenkins.is_configured():
        return counts
    quiet_for = quiet_for or timedelta(minutes=settings.RECONCILE_RUNS_AFTER_MINUTES)
    for run in quiet_runs(since=timezone.now() - quiet_for)[:RECONCILE_BATCH]:
        try:
            finished = reconcile_run(run)
        except JenkinsError as exc:
            logger.warning("Reconciler: stopped at run %s, nothing changed: %s", run.pk, exc.reason)
            break
        counts["asked"] += 1
        counts["finished" if finished else "still_going"] += 1
    return counts


def reconcile_run(run: PipelineRun) -> bool:
    """Bring one quiet run in line with Jenkins; True when it ended. Raises JenkinsError when Jenkins did not
    answer (or refused): then nothing was changed."""
    if run.build_number is None:
        try:
            state = jenkins.queue_state(run.queue_id)
        except JenkinsError as exc:
            if exc.status != 404:
                raise
            return finish_aborted(run, reason=f"{exc.reason} No build reported for it since: the reconciler ended the "
                                              "run as aborted.")
        if state.cancelled:
            return finish_aborted(run, reason="The build was cancelled in the Jenkins queue.")
        if state.build_number is None:
            mark_checked(run)
            return False
        attach_build(run, state.build_number, state.build_url)
        run = reload(run)
        if run.build_number is None:
            return False
    job_path = run.project.jenkins_job_path
    try:
        build = jenkins.parse_build_info(jenkins.build_info(job_path, run.build_number))
    except JenkinsError as exc:
        if exc.status != 404:
            raise
        finish_from_jenkins(run, status=RunStatus.ABORTED,
                            reason=f"{exc.reason} The run had stopped reporting: the reconciler ended it as aborted.")
        return True
    status = JENKINS_RESULTS.get(build.result or "")
    if build.building or status is None:
        mark_checked(run)
        return False
    reason = ""
    if status != RunStatus.SUCCESS:
        reason = f"Jenkins says build #{run.build_number} ended {build.result}; the run had stopped reporting."
        if status == RunStatus.FAILED:
            reason += " " + console_tail(job_path, run.build_number, chars=REASON_CHARS - len(reason) - 1)
    finish_from_jenkins(run, status=status, reason=reason, started_at=build.started_at, finished_at=build.finished_at)
    return True


def finish_from_jenkins(run: PipelineRun, *, status: str, reason: str, started_at=None, finished_at=None) -> None:
    """End a numbered run as Jenkins says, through the callbacks' own rules (statuses only move forward)."""
    fields = {"status": status, "started_at": started_at, "finished_at": finished_at}
    upsert_run(project=run.project, build_number=run.build_number, fields=fields, actor_label="reconciler")
    PipelineRun.objects.filter(pk=run.pk, status=status).update(status_reason=reason[:REASON_CHARS],
                                                                 jenkins_checked_at=timezone.now())


def console_tail(job_path: str, number: int, *, chars: int) -> str:
    """How the build's console ends: its last whole lines, joined on one line within `chars`; "" when Jenkins
    cannot say (the run still ends: the result is what matters)."""
    try:
        text = jenkins.console_output(job_path, number)
    except JenkinsError as exc:
        logger.info("Reconciler: no console for build #%s of %s: %s", number, job_path, exc.reason)
        return ""
    prefix, separator = "Console: ", " / "
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept, size = [], len(prefix)
    for line in reversed(lines):
        cost = len(line) + (len(separator) if kept else 0)
        if size + cost > chars:
            break
        kept.append(line)
        size += cost
    if not kept and lines:
        kept = [lines[-1][-(chars - len(prefix)):]]  # one line longer than the room: its end
    return prefix + separator.join(reversed(kept)) if kept else ""


def mark_checked(run: PipelineRun) -> None:
    """Jenkins says the run is still going: ask again only once it has been quiet as long again."""
    PipelineRun.objects.filter(pk=run.pk).update(jenkins_checked_at=timezone.now())
