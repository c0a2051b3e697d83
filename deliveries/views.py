from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from deliveries import selectors
from deliveries.models import Project, RunStatus
from portal.roles import role_required

RUNS_PER_PAGE = 50


@require_GET
@role_required()
def home(request):
    return render(request, "deliveries/home.html", {"projects": selectors.projects_with_latest_runs()})


@require_GET
@role_required()
def project_detail(request, slug):
    project = get_object_or_404(Project, slug=slug)
    branch = request.GET.get("branch", "")
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    runs = selectors.project_runs(project, branch=branch, status=status)
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "branches": selectors.project_branches(project),
        "statuses": RunStatus.choices,
        "branch": branch,
        "status": status,
        "deployments": selectors.current_deployments(project),
    }
    return render(request, "deliveries/project_detail.html", context)


@require_GET
@role_required()
def run_detail(request, slug, run_id):
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    return render(request, "deliveries/run_detail.html", {"project": run.project, "run": run})
