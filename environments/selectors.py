"""Reads for the environment pages: what runs where, its health, and how far environments drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.utils import timezone

from deliveries.models import Artifact, PipelineRun, Project, RunStatus
from environments.models import AvailabilityCheck, Deployment, DeploymentStatus, Environment, FreezeWindow, Tier


@dataclass
class BoardRow:
    project: Project
    cells: list  # one Deployment or None per environment, in board order
    drift: list[tuple[str, str, int]]  # (ahead environment, behind environment, runs ahead)


def production_run(project_id: int):
    """The run whose images production runs now: the source of the project's newest successful production
    deployment. Each production environment's newest is read backwards from the end of its index range
    (project, environment, finished_at), and the newest of those few wins: one ORDER BY across environments made
    PostgreSQL join and sort every production deployment of the project."""
    newest_in_each = Environment.objects.filter(tier=Tier.PRODUCTION).values(newest=Subquery(
        Deployment.objects.filter(project_id=project_id, environment=OuterRef("pk"), status=DeploymentStatus.SUCCESS,
                                  source_run__isnull=False, finished_at__isnull=False)
        .order_by("-finished_at", "-id").values("pk")[:1]
    ))
    deployment = (
        Deployment.objects.filter(pk__in=newest_in_each).select_related("source_run").order_by("-finished_at", "-id")
        .first()
    )
    return deployment.source_run if deployment else None


def active_freeze(*, environment_id: int, at=None) -> FreezeWindow | None:
    """The freeze window in force on an environment at a moment (now by default): the one rule that the portal's
    own deploys, the deploy-permission answer and the deployment callbacks all ask."""
    return frozen_at(at or timezone.now()).filter(environment_id=environment_id).order_by("ends_at").first()


def frozen_at(at: datetime):
    """The freeze windows in force at a moment."""
    return FreezeWindow.objects.filter(starts_at__lte=at, ends_at__gt=at)


def check_interval() -> timedelta:
    return timedelta(minutes=settings.AVAILABILITY_CHECK_INTERVAL_MINUTES)


def health_state(ok: bool | None, checked_at: datetime | None, *, now: datetime | None = None) -> str:
    """healthy, failing or unknown: a check older than twice the schedule's interval says nothing about now, so it
    never reads healthy."""
    if ok is None or checked_at is None or checked_at < (now or timezone.now()) - 2 * check_interval():
        return "unknown"
    return "healthy" if ok else "failing"


@dataclass(frozen=True)
class Health:
    """What the latest availability check of a project in an environment says now."""

    state: str  # healthy, failing, unknown
    check: AvailabilityCheck | None

    @property
    def failures_in_a_row(self) -> int:
        return self.check.failures_in_a_row if self.check else 0


def health_of(check: AvailabilityCheck | None, *, now: datetime | None = None) -> Health:
    return Health(health_state(check.ok if check else None, check.checked_at if check else None, now=now), check)


def environments_with_health():
    latest = AvailabilityCheck.objects.filter(environment=OuterRef("pk")).order_by("-checked_at")
    return Environment.objects.annotate(
        health_ok=Subquery(latest.values("ok")[:1]),
        health_checked_at=Subquery(latest.values("checked_at")[:1]),
        health_code=Subquery(latest.values("status_code")[:1]),
    ).order_by("order", "name")


def current_deployments(project=None):
    """What runs in each (project, environment) now, with the health of its latest check; one project's when
    given (the filter goes inside the per-environment grouping, so only its deployments are scanned)."""
    latest = AvailabilityCheck.objects.filter(project=OuterRef("project"), environment=OuterRef("environment"))
    return (
        Deployment.objects.current_per_environment(project)
        .select_related("source_run", "deployed_by", "environment")
        .annotate(latest_check_id=Subquery(latest.order_by("-checked_at", "-id").values("id")[:1]))
    )


def with_health(deployments) -> list[Deployment]:
    """The deployments (from current_deployments) with `.health`, their project's latest check read now: one
    query for all."""
    deployments = list(deployments)
    ids = [d.latest_check_id for d in deployments if d.latest_check_id]
    checks = AvailabilityCheck.objects.in_bulk(ids) if ids else {}
    now = timezone.now()
    for deployment in deployments:
        deployment.health = health_of(checks.get(deployment.latest_check_id), now=now)
    return deployments


def environment_board() -> tuple[list[Environment], list[BoardRow]]:
    """Projects × environments, in a fixed number of queries whatever the history's size."""
    environments = list(Environment.objects.order_by("order", "name"))
    projects = list(Project.objects.order_by("name"))
    by_cell = {(d.project_id, d.environment_id): d for d in with_health(current_deployments())}
    rows = [
        BoardRow(project=project, cells=[by_cell.get((project.pk, env.pk)) for env in environments], drift=[])
        for project in projects
    ]
    add_drift(rows, environments)
    return environments, rows


# What "staging is 3 runs ahead of production" counts, written once: the home page shows it as the drift's tooltip.
RUNS_AHEAD_DEFINITION = (
    "Runs of the branch the earlier environment deploys, created after the run the later environment runs, up to "
    "and including the earlier environment's run, whatever their result (a failed or unstable run's changes are "
    "still in the runs after it): the changes that promoting it would take further. Runs Jenkins never built "
    "(queued, trigger failed) do not count."
)
NEVER_BUILT = [RunStatus.QUEUED, RunStatus.TRIGGER_FAILED]


def add_drift(rows: list[BoardRow], environments: list[Environment]) -> None:
    """For neighbouring environments on the promotion path, how many runs the earlier one is ahead of the later
    one (RUNS_AHEAD_DEFINITION). One query."""
    pairs = []  # (row, ahead environment, behind environment, condition)
    for row in rows:
        deployed = [(env, cell) for env, cell in zip(environments, row.cells, strict=True) if cell and cell.source_run]
        for (ahead_env, ahead), (behind_env, behind) in zip(deployed, deployed[1:], strict=False):
            ahead_run, behind_run = ahead.source_run, behind.source_run
            if ahead_run.created_at > behind_run.created_at:
                condition = Q(project_id=row.project.pk, branch=ahead_run.branch,
                              created_at__gt=behind_run.created_at, created_at__lte=ahead_run.created_at)
                pairs.append((row, ahead_env, behind_env, condition))
    if not pairs:
        return
    either = Q()
    for *_, condition in pairs:
        either |= condition
    # the WHERE lets the (project, branch, created_at) index find the runs; each FILTER counts one pair
    counts = PipelineRun.objects.filter(either).exclude(status__in=NEVER_BUILT).aggregate(
        **{f"pair{index}": Count("id", filter=condition) for index, (*_, condition) in enumerate(pairs)}
    )
    for index, (row, ahead_env, behind_env, _) in enumerate(pairs):
        if counts[f"pair{index}"]:
            row.drift.append((ahead_env.name, behind_env.name, counts[f"pair{index}"]))


# --- the environment pages ---------------------------------------------------------------------------------------

CHART_CHECKS = 200  # the newest checks the health chart draws
DEPLOYABLE_RUNS = 50  # the newest runs offered by "Deploy a run"


def environment_deployments(environment: Environment):
    """The environment's deployment history, newest first, with what each row shows."""
    return (Deployment.objects.filter(environment=environment)
            .select_related("project", "source_run", "deployed_by")
            .order_by("-started_at", "-id"))


def recent_checks(environment: Environment, *, limit: int = CHART_CHECKS) -> list[AvailabilityCheck]:
    """The newest checks of the environment, oldest first (as a chart reads them)."""
    checks = list(AvailabilityCheck.objects.filter(environment=environment).select_related("project")
                  .order_by("-checked_at", "-id")[:limit])
    return checks[::-1]


def coming_freezes(environment: Environment, *, now: datetime | None = None) -> list[FreezeWindow]:
    """The windows in force now and those to come, soonest first."""
    return list(environment.freeze_windows.filter(ends_at__gt=now or timezone.now()).order_by("starts_at"))


def deployable_runs():
    """Runs the portal can deploy: finished green, with images, every one of them with a digest."""
    undigested = Artifact.objects.filter(run=OuterRef("pk"), digest="")
    return (PipelineRun.objects.filter(status=RunStatus.SUCCESS)
            .filter(Exists(Artifact.objects.filter(run=OuterRef("pk"))), ~Exists(undigested))
            .select_related("project").order_by("-created_at", "-id"))


def rule_breaking_deployments(limit: int = 10):
    """The newest deployments that broke a deploy rule (the home page's warning list)."""
    return (
        Deployment.objects.exclude(rule_violations=[])
        .select_related("project", "environment", "source_run")
        .order_by("-started_at", "-id")[:limit]
    )
