"""DORA's four keys for a project and period, computed from runs, deployments and availability checks.

Definitions (as the Four Keys project states them, applied to this portal's records):
- Deployment frequency: successful production deployments (deploys and redeploys, not rollbacks) per day.
- Lead time for changes: from the commit to its successful production deployment, split into build (commit to
  images pushed), staging tests (images pushed to the end of the dev run), waiting for approval (end of the dev
  run to the start of the master run) and production pipeline (start of the master run to the deployment).
- Change failure rate: share of production deployments followed by a failure (the deployment failed, a
  production availability check failed while it ran) or by a rollback.
- Time to restore: from a failed production deployment or a failing production availability check to the next
  healthy production state (a successful deployment or rollback, or a passing check). An automatic rollback is
  recorded as the failure is, so its restore is immediate: the previous version never stopped serving for long.
Bands follow the 2021 Accelerate State of DevOps report, made contiguous so that every value has one.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db.models import Q
from django.utils import timezone

from deliveries.models import PipelineRun, Promotion, RunStatus, Stage, StageStatus
from environments.models import AvailabilityCheck, Deployment, DeploymentKind, DeploymentStatus, Environment, Tier

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
BUILD_STAGE = "Push images"

KEY_LABELS = {
    "deployment_frequency": "Deployment frequency",
    "lead_time": "Lead time for changes",
    "change_failure_rate": "Change failure rate",
    "time_to_restore": "Time to restore",
}
BANDS = {
    "deployment_frequency": [
        ("Elite", "on demand: at least once a day"),
        ("High", "between once a day and once a week"),
        ("Medium", "between once a week and once a month"),
        ("Low", "less than once a month"),
    ],
    "lead_time": [
        ("Elite", "less than one hour"),
        ("High", "less than one week"),
        ("Medium", "less than six months"),
        ("Low", "six months or more"),
    ],
    "change_failure_rate": [
        ("Elite", "15% or less"),
        ("High", "30% or less"),
        ("Medium", "45% or less"),
        ("Low", "more than 45%"),
    ],
    "time_to_restore": [
        ("Elite", "less than one hour"),
        ("High", "less than one day"),
        ("Medium", "less than one week"),
        ("Low", "one week or more"),
    ],
}


class ProductionDeployment(NamedTuple):
    """What the four keys read of a production deployment and of the run it deployed: plain values."""

    pk: int
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    replaced_id: int | None
    source_run_id: int | None
    source_created_at: datetime | None
    source_committed_at: datetime | None

    COLUMNS = ("pk", "kind", "status", "started_at", "finished_at", "replaced_id", "source_run_id",
               "source_run__created_at", "source_run__committed_at")


@dataclass
class LeadTime:
    deployment_id: int
    total: timedelta
    build: timedelta | None
    staging_tests: timedelta | None
    waiting_for_approval: timedelta | None
    production_pipeline: timedelta
    deployed_at: datetime | None = None


@dataclass
class FourKeys:
    start: datetime
    end: datetime
    deployments: int
    deployments_per_day: float
    lead_times: list[LeadTime] = field(default_factory=list)
    failed_changes: int = 0
    restores: list[timedelta] = field(default_factory=list)

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY

    @property
    def median_lead_time(self) -> timedelta | None:
        return median_duration([lead.total for lead in self.lead_times])

    def median_segment(self, name: str) -> timedelta | None:
        return median_duration([getattr(lead, name) for lead in self.lead_times if getattr(lead, name) is not None])

    @property
    def change_failure_rate(self) -> float | None:
        return None if not self.deployments else 100.0 * self.failed_changes / self.deployments

    @property
    def median_time_to_restore(self) -> timedelta | None:
        return median_duration(self.restores)

    def bands(self) -> dict[str, str | None]:
        return {
            "deployment_frequency": frequency_band(self.deployments_per_day),
            "lead_time": duration_band(self.median_lead_time, [HOUR, WEEK, 182 * DAY]),
            "change_failure_rate": rate_band(self.change_failure_rate),
            "time_to_restore": duration_band(self.median_time_to_restore, [HOUR, DAY, WEEK]),
        }


def median_duration(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(value.total_seconds() for value in values))


def frequency_band(per_day: float) -> str:
    if per_day >= 1:
        return "Elite"
    if per_day >= 1 / 7:
        return "High"
    if per_day >= 1 / 30:
        return "Medium"
    return "Low"


def duration_band(value: timedelta | None, limits: list[timedelta]) -> str | None:
    if value is None:
        return None
    for band, limit in zip(("Elite", "High", "Medium"), limits, strict=True):
        if value < limit:
            return band
    return "Low"


def rate_band(percent: float | None) -> str | None:
    if percent is None:
        return None
    for band, limit in (("Elite", 15), ("High", 30), ("Medium", 45)):
        if percent <= limit:
            return band
    return "Low"


def four_keys(project, *, days: int = 30, now: datetime | None = None) -> FourKeys:
    """The four keys of a project over the last `days` days, in a fixed number of queries, each reading the window's
    rows only."""
    end = now or timezone.now()
    start = end - timedelta(days=days)
    deployments = (
        Deployment.objects.filter(project=project, started_at__lt=end,
                                  environment__in=Environment.objects.filter(tier=Tier.PRODUCTION))
        .order_by("started_at", "id")
        .values_list(*ProductionDeployment.COLUMNS)
    )
    # Those finished since a week before the window, and those never finished (a rollback under way counts): two
    # reads of deploy_project_env_finished, each where it starts. One OR of both made either database read every
    # production deployment of the project, back to the start of its history.
    production = sorted(map(ProductionDeployment._make, [*deployments.filter(finished_at__gte=start - WEEK),
                                                         *deployments.filter(finished_at=None)]),
                        key=lambda d: (d.started_at, d.pk))
    checks = list(
        AvailabilityCheck.objects.filter(environment__tier=Tier.PRODUCTION, checked_at__gte=start, checked_at__lt=end)
        # the project's checks; older checks name no project, only (at most) the deployment they probed
        .filter(Q(project=project) | Q(project__isnull=True, deployment__project=project)
                | Q(project__isnull=True, deployment__isnull=True))
        .order_by("checked_at")
        .values_list("checked_at", "ok", "deployment_id")
    )
    # The counts below come from these rows, not from a COUNT in the database: the same rows are needed for the failed
    # changes (the next deployment's start, the rollbacks) and the restores (a timeline), so a COUNT would be one more
    # query restating "a change is a non-rollback finished in the window". Each read above is an index range over the
    # window (tests/deliveries/test_dora.py), so the rows loaded follow the window's deployments and checks, not the
    # history; lead_times reads the window's green dev runs (less a month) the same way.
    in_period = [d for d in production if d.finished_at and start <= d.finished_at < end]
    changes = [d for d in in_period if d.kind != DeploymentKind.ROLLBACK]
    successful = [d for d in changes if d.status == DeploymentStatus.SUCCESS]
    result = FourKeys(start=start, end=end, deployments=len(changes),
                      deployments_per_day=len(successful) / max(days, 1))
    result.lead_times = lead_times(project, successful)
    result.failed_changes = failed_changes(changes, production, checks)
    result.restores = restore_times(production, checks, start, end)
    return result


def failed_changes(changes, production, checks) -> int:
    """How many of `changes` were followed by a failure or a rollback, in one pass over the timeline."""
    ordered = sorted(production, key=lambda d: (d.started_at, d.pk))
    next_start = {d.pk: (ordered[i + 1].started_at if i + 1 < len(ordered) else None) for i, d in enumerate(ordered)}
    rolled_back = {d.replaced_id for d in production if d.kind == DeploymentKind.ROLLBACK}
    failing = sorted((checked_at, deployment_id or 0) for checked_at, ok, deployment_id in checks if not ok)
    moments = [checked_at for checked_at, _ in failing]
    count = 0
    for deployment in changes:
        if deployment.status in (DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK) or deployment.pk in rolled_back:
            count += 1
            continue
        until = next_start[deployment.pk]
        first = bisect_left(moments, deployment.finished_at)
        last = bisect_left(moments, until) if until else len(moments)
        # a failing check counts when it names this deployment, or no deployment at all
        count += any(owner in (0, deployment.pk) for _, owner in failing[first:last])
    return count


def restore_times(production, checks, start, end) -> list[timedelta]:
    """Durations from each fall into an unhealthy state to the next healthy one, within the period."""
    events = [(d.finished_at, d.status == DeploymentStatus.SUCCESS) for d in production
              if d.finished_at and d.status != DeploymentStatus.PENDING]
    events += [(checked_at, ok) for checked_at, ok, _ in checks]
    events.sort(key=lambda event: event[0])
    restores, broken_since = [], None
    for moment, healthy in events:
        if not healthy and broken_since is None:
            broken_since = moment
        elif healthy and broken_since is not None:
            if start <= moment < end:
                restores.append(moment - broken_since)
            broken_since = None
    return restores


def lead_times(project, deployments: list[ProductionDeployment]) -> list[LeadTime]:
    """Lead time of each successful production deployment, back to the dev run it promoted. Three queries: the
    promotions, the candidate dev runs (plain values), and the build stage of the dev runs chosen."""
    deployments = [d for d in deployments if d.source_run_id]  # its master run
    if not deployments:
        return []
    promotions = list(
        Promotion.objects.filter(master_run__in={d.source_run_id for d in deployments}).order_by("created_at")
        .values_list("master_run_id", "source_run_id", "decided_at")
    )
    promoted = {master_id: dev_id for master_id, dev_id, _ in promotions}
    approved_at = {master_id: decided_at for master_id, _, decided_at in promotions if decided_at}
    # The promoted dev runs, plus, for master runs no promotion names, the green dev runs before them.
    candidates = Q(pk__in=promoted.values())
    unpromoted = [d.source_created_at for d in deployments if d.source_run_id not in promoted]
    if unpromoted:
        candidates |= Q(created_at__gte=min(unpromoted) - MONTH, created_at__lte=max(unpromoted))
    dev_runs = list(
        PipelineRun.objects.filter(candidates, project=project, branch=project.dev_branch, status=RunStatus.SUCCESS,
                                   finished_at__isnull=False)
        .order_by("finished_at")
        .values("pk", "created_at", "committed_at", "finished_at")
    )
    by_id = {run["pk"]: run for run in dev_runs}
    finish_times = [run["finished_at"] for run in dev_runs]
    chosen = {}
    for deployment in deployments:
        dev = by_id.get(promoted.get(deployment.source_run_id))
        if dev is None:  # no promotion recorded: the newest green dev run finished before the master run
            index = bisect_right(finish_times, deployment.source_created_at)
            dev = dev_runs[index - 1] if index else None
        chosen[deployment.source_run_id] = dev
    pushed = dict(
        Stage.objects.filter(run_id__in=[dev["pk"] for dev in chosen.values() if dev], name=BUILD_STAGE,
                             status=StageStatus.SUCCESS, finished_at__isnull=False)
        .values_list("run_id", "finished_at")
    )
    return [lead_time(d, chosen[d.source_run_id], pushed, approved_at.get(d.source_run_id)) for d in deployments]


def lead_time(deployment: ProductionDeployment, dev: dict | None, pushed: dict, approved_at=None) -> LeadTime:
    """Commit -> images pushed (build) -> dev run finished (staging tests) -> approval (waiting: for the request,
    then for a tech lead) -> production deployment finished (merge, master run, deploy). With no promotion, the
    master run's start stands for the approval."""
    master_created_at = deployment.source_created_at
    production_pipeline = deployment.finished_at - master_created_at
    if dev is None:
        first = deployment.source_committed_at or master_created_at
        return LeadTime(deployment.pk, deployment.finished_at - first, None, None, None, production_pipeline,
                        deployment.finished_at)
    committed = dev["committed_at"] or dev["created_at"]
    images_pushed = pushed.get(dev["pk"]) or dev["finished_at"]
    approved = max(approved_at or master_created_at, dev["finished_at"])
    return LeadTime(
        deployment_id=deployment.pk,
        total=deployment.finished_at - committed,
        build=images_pushed - committed,
        staging_tests=dev["finished_at"] - images_pushed,
        waiting_for_approval=approved - dev["finished_at"],
        production_pipeline=deployment.finished_at - approved,
        deployed_at=deployment.finished_at,
    )
