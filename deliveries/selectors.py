"""Reads for the deliveries pages: each fetches what its page shows in a fixed number of queries."""

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, Prefetch, Q
from django.utils import timezone

from deliveries.models import FINISHED_RUN_STATUSES, PipelineRun, Project, Promotion, PromotionState, RunStatus
from environments.models import Deployment

DURATION_CHART_RUNS = 60
SUCCESS_RATE_DAYS = 30


def projects_with_latest_runs() -> list[Project]:
    """Every project with `latest_runs`: its newest run per branch, newest first. Two queries: the projects, and the
    newest runs of every project together. Not a prefetch: its `project_id IN (...)` made SQLite read every run of
    the projects through their index, rather than the few newest by their ids."""
    latest = defaultdict(list)
    for run in PipelineRun.objects.latest_per_branch().order_by("-created_at"):
        latest[run.project_id].append(run)
    projects = list(Project.objects.all())
    for project in projects:
        project.latest_runs = latest[project.pk]
    return projects


def recent_runs(limit: int = 12):
    return PipelineRun.objects.select_related("project").order_by("-created_at", "-id")[:limit]


def promotions_waiting():
    """Promotions a tech lead has to look at, oldest first."""
    return (
        Promotion.objects.filter(state=PromotionState.REQUESTED)
        .select_related("project", "source_run", "requested_by")
        .order_by("created_at")
    )


def project_runs(project, *, branch: str = "", status: str = "", since=None, until=None):
    runs = PipelineRun.objects.filter(project=project).select_related("triggered_by")
    if branch:
        runs = runs.filter(branch=branch)
    if status:
        runs = runs.filter(status=status)
    if since:
        runs = runs.filter(created_at__date__gte=since)
    if until:
        runs = runs.filter(created_at__date__lte=until)
    return runs.order_by("-created_at", "-id")


def run_history_stats(runs, *, now=None) -> dict:
    """Success rate of the finished runs among `runs` made in the last SUCCESS_RATE_DAYS days, and the durations of
    the newest ones for a chart. A fixed window, so that the rate reads an index range on (project, created_at)
    whatever the length of the history, and says how the project does now rather than since its start."""
    since = (now or timezone.now()) - timedelta(days=SUCCESS_RATE_DAYS)
    counts = runs.filter(created_at__gte=since).aggregate(
        finished=Count("id", filter=Q(status__in=FINISHED_RUN_STATUSES)),
        succeeded=Count("id", filter=Q(status=RunStatus.SUCCESS)),
    )
    newest = list(
        runs.filter(started_at__isnull=False, finished_at__isnull=False)
        .values("build_number", "pk", "started_at", "finished_at", "status")[:DURATION_CHART_RUNS]
    )
    newest.reverse()
    finished = counts["finished"]
    return {
        "finished": finished,
        "succeeded": counts["succeeded"],
        "success_rate": 100.0 * counts["succeeded"] / finished if finished else None,
        "days": SUCCESS_RATE_DAYS,
        "durations": newest,
    }


def project_branches(project) -> list[str]:
    """The branches the project has runs of, by name: one per newest run of a branch, so that the database probes
    an index once per branch instead of reading every run."""
    newest = PipelineRun.objects.latest_per_branch(project)
    return list(newest.order_by("branch").values_list("branch", flat=True))


def runs_with_details():
    """Runs with what their page shows (stages, images, reports, deployments), in a fixed number of queries."""
    deployments = Deployment.objects.select_related("environment", "deployed_by").order_by("started_at", "id")
    return PipelineRun.objects.select_related("project", "triggered_by").prefetch_related(
        "stages", "artifacts", "reports", Prefetch("deployments", queryset=deployments)
    )
