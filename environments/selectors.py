"""Reads for the environment pages: what runs where, its health, and how far environments drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from deliveries.models import PipelineRun, Project, RunStatus
from environments.models import AvailabilityCheck, Deployment, DeploymentStatus, Environment, FreezeWindow, Tier


@dataclass
class BoardRow:
    project: Project
    cells: list  # one Deployment or None per environment, in board order
    drift: list[tuple[str, str, int]]  # (ahead environment, behind environment, runs ahead)


def production_run(project_id: int):
    """The run whose images production runs now: the source of the project's newest successful production
    deployment (by the project's index, not a scan of every deployment)."""
    deployment = (
        Deployment.objects.filter(project_id=project_id, environment__tier=Tier.PRODUCTION,
                                  status=DeploymentStatus.SUCCESS, source_run__isnull=False)
        .select_related("source_run")
        .order_by("-finished_at", "-id")
        .first()
    )
    return deployment.source_run if deployment else None


def active_freeze(*, environment_id: int, at=None) -> FreezeWindow | None:
    """The freeze window in force on an environment at a moment (now by default): the one rule that the portal's
    own deploys, the deploy-permission answer and the deployment callbacks all ask."""
    at = at or timezone.now()
    return (
        FreezeWindow.objects.filter(environment_id=environment_id, starts_at__lte=at, ends_at__gt=at)
        .order_by("ends_at")
        .first()
    )


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
    latest = AvailabilityCheck.objects.filter(deployment=OuterRef("pk")).order_by("-checked_at")
    deployments = Deployment.objects.filter(project=project) if project is not None else Deployment.objects
    return (
        deployments.current_per_environment()
        .select_related("source_run", "deployed_by", "environment")
        .annotate(health_ok=Subquery(latest.values("ok")[:1]))
    )


def environment_board() -> tuple[list[Environment], list[BoardRow]]:
    """Projects × environments, in a fixed number of queries whatever the history's size."""
    environments = list(environments_with_health())
    projects = list(Project.objects.order_by("name"))
    by_cell = {(d.project_id, d.environment_id): d for d in current_deployments()}
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


def rule_breaking_deployments(limit: int = 10):
    """The newest deployments that broke a deploy rule (the home page's warning list)."""
    return (
        Deployment.objects.exclude(rule_violations=[])
        .select_related("project", "environment", "source_run")
        .order_by("-started_at", "-id")[:limit]
    )
