"""Reads for the deliveries pages: each fetches what its page shows in a fixed number of queries."""

from django.db.models import Prefetch

from deliveries.models import PipelineRun, Project
from environments.models import Deployment


def projects_with_latest_runs():
    """Every project with `latest_runs`: its newest run per branch, newest first."""
    latest = PipelineRun.objects.latest_per_branch().order_by("-created_at")
    return Project.objects.prefetch_related(Prefetch("runs", queryset=latest, to_attr="latest_runs"))


def project_runs(project, *, branch: str = "", status: str = ""):
    runs = PipelineRun.objects.filter(project=project).select_related("triggered_by")
    if branch:
        runs = runs.filter(branch=branch)
    if status:
        runs = runs.filter(status=status)
    return runs.order_by("-created_at", "-id")


def project_branches(project) -> list[str]:
    branches = PipelineRun.objects.filter(project=project).values_list("branch", flat=True)
    return list(branches.distinct().order_by("branch"))


def current_deployments(project):
    return (
        Deployment.objects.current_per_environment()
        .filter(project=project)
        .select_related("environment", "source_run", "deployed_by")
        .order_by("environment__order")
    )


def runs_with_details():
    return PipelineRun.objects.select_related("project", "triggered_by").prefetch_related(
        "stages", "artifacts", "reports"
    )
