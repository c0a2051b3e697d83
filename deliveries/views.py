from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from deliveries import dora, selectors, triggers
from deliveries.forms import RunCloseForm, RunFilterForm, RunPipelineForm
from deliveries.models import Project, RunStatus, StageStatus
from environments import selectors as environment_selectors
from portal import charts
from portal.inputs import ascii_int
from portal.pagination import CappedCountPaginator
from portal.roles import Role, has_role, role_required
from promotions import selectors as promotion_selectors

RUNS_PER_PAGE = 50


@require_GET
@role_required()
def home(request):
    environments, board = environment_selectors.environment_board()
    context = {
        "projects": selectors.projects_with_latest_runs(),
        "environments": environments,
        "board": board,
        "runs_ahead_definition": environment_selectors.RUNS_AHEAD_DEFINITION,
        "recent_runs": selectors.recent_runs(),
        "waiting_promotions": selectors.promotions_waiting(),
        "rule_breaking_deployments": environment_selectors.rule_breaking_deployments(),
    }
    return render(request, "deliveries/home.html", context)


def project_context(request, project, *, form=None) -> dict:
    filters = RunFilterForm(request.GET).filters()
    runs = selectors.project_runs(project, **filters)
    branches = selectors.project_branches(project)
    history = selectors.run_history_stats(runs)
    return {
        "project": project,
        # the history only grows: its count stops at the cap ("1,000+ runs"), a date filter reaches older runs
        "page": CappedCountPaginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page")),
        "branches": branches,
        "statuses": RunStatus.choices,
        **filters,
        "query": urlencode({key: value or "" for key, value in filters.items()}),
        "history": history,
        "duration_chart": duration_chart(project, history["durations"]),
        "deployments": environment_selectors.current_deployments(project).order_by("environment__order"),
        "run_form": form or RunPipelineForm(project=project, branches=branches),
        **promotion_panel(project),
    }


def promotion_panel(project) -> dict:
    """The project page's promotion card: the open promotion, or the run to promote and whether it may be."""
    candidate = promotion_selectors.candidate_run(project)
    return {
        "open_promotion": promotion_selectors.open_promotion(project),
        "candidate_run": candidate,
        "candidate_refusal": promotion_selectors.refusal(candidate) if candidate else "",
    }


def duration_chart(project, durations: list[dict]):
    minutes = [(d["finished_at"] - d["started_at"]).total_seconds() / 60 for d in durations]
    return charts.line_chart(
        [charts.Series("duration", minutes)],
        x_labels=[f"#{d['build_number']}" if d["build_number"] is not None else str(d["pk"]) for d in durations],
        x_links=[reverse("run-detail", args=[project.slug, d["pk"]]) for d in durations],
        x_name="Run",
        y_unit="min",
        title="Run duration, newest runs matching the filters",
    )


@require_GET
@role_required()
def project_detail(request, slug):
    project = get_object_or_404(Project, slug=slug)
    return render(request, "deliveries/project_detail.html", project_context(request, project))


@require_POST
@role_required(Role.DEVELOPER)
def run_pipeline(request, slug):
    project = get_object_or_404(Project, slug=slug)
    form = RunPipelineForm(request.POST, project=project, branches=selectors.project_branches(project))
    if not form.is_valid():
        context = project_context(request, project, form=form)
        return render(request, "deliveries/project_detail.html", context, status=400)
    try:
        run = triggers.request_run(
            project=project, branch=form.cleaned_data["branch"], commit=form.cleaned_data["commit"], user=request.user
        )
    except triggers.AlreadyQueued as exc:
        return already_queued(request, exc)
    except triggers.TriggerRefused as exc:
        messages.error(request, str(exc))
        return redirect(project)
    return run_requested(request, run)


def run_requested(request, run):
    where = "the simulated Jenkins" if settings.JENKINS_SIMULATED else "Jenkins"
    messages.success(request, f"Run of {run.branch} requested: {where} is asked to start it.")
    return redirect(run)


def already_queued(request, refusal: triggers.AlreadyQueued):
    messages.warning(request, str(refusal))
    return redirect(refusal.run)  # the page of the run already waiting


def run_refused(request, run, reason: str = "", *, status: int = 409, **context):
    """The run page again, saying why the action was refused (409), or with the form's errors (400)."""
    if reason:
        messages.warning(request, reason)
    return render(request, "deliveries/run_detail.html", run_context(request, run, **context), status=status)


def run_context(request, run, *, close_form=None) -> dict:
    can_abort = not run.is_finished and has_role(request.user, Role.DEVELOPER, Role.OPERATOR)
    can_close = not run.is_finished and has_role(request.user, Role.OPERATOR)
    can_retry = run.status == RunStatus.TRIGGER_FAILED and has_role(request.user, Role.DEVELOPER)
    stages = list(run.stages.all())
    return {
        "project": run.project,
        "run": run,
        "can_abort": can_abort,
        "can_close": can_close,
        "close_form": close_form or (RunCloseForm() if can_close else None),
        "can_retry": can_retry,
        "timeline": stage_timeline(stages),
        "current_stage": next((s for s in reversed(stages) if s.status == StageStatus.RUNNING), None),
        "failed_stages": [s for s in stages if s.status in (StageStatus.FAILED, StageStatus.UNSTABLE)],
        **(run_promotion_panel(request, run) if run.is_finished else {}),
    }


def run_promotion_panel(request, run) -> dict:
    """The finished run page's promotion card: its promotions, and whether it may be requested (why not)."""
    return {
        "can_request_promotion": has_role(request.user, Role.DEVELOPER, Role.TECHLEAD),
        "promotion_refusal": promotion_selectors.refusal(run),
        "run_promotions": promotion_selectors.run_promotions(run),
    }


def stage_timeline(stages) -> list[dict]:
    """Each stage's bar as percentages of the run's span, like Jenkins' stage view (a running stage ends now)."""
    now = timezone.now()
    spans = [(s.started_at, s.finished_at or now) for s in stages if s.started_at]
    start = min((begin for begin, _ in spans), default=None)
    end = max((finish for _, finish in spans), default=None)
    total = (end - start).total_seconds() if start and end and end > start else 0
    rows = []
    for stage in stages:
        left = width = 0.0
        if stage.started_at and total:
            left = (stage.started_at - start).total_seconds() / total * 100
            width = ((stage.finished_at or now) - stage.started_at).total_seconds() / total * 100
        rows.append({"stage": stage, "left": round(left, 2), "width": round(max(width, 0.3), 2)})
    return rows


@require_GET
@role_required()
def run_detail(request, slug, run_id):
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    return render(request, "deliveries/run_detail.html", run_context(request, run))


@never_cache
@require_GET
@role_required()
def run_live(request, slug, run_id):
    """The changing part of the run page, polled by portal/live.js while the run is in progress."""
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    return render(request, "deliveries/_run_live.html", run_context(request, run))


@require_POST
@role_required(Role.DEVELOPER, Role.OPERATOR)
def run_abort(request, slug, run_id):
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    try:
        triggers.request_abort(run=run, user=request.user)
    except triggers.TriggerRefused as exc:
        return run_refused(request, run, str(exc))
    messages.success(request, "Abort requested: Jenkins is asked to stop the run.")
    return redirect(run)


@require_POST
@role_required(Role.OPERATOR)
def run_close(request, slug, run_id):
    """End a run by hand, in the portal only: for a run nothing will report on again (Jenkins lost it)."""
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    form = RunCloseForm(request.POST)
    if not form.is_valid():
        return run_refused(request, run, status=400, close_form=form)
    try:
        triggers.close_run(run=run, user=request.user, reason=form.cleaned_data["reason"])
    except triggers.TriggerRefused as exc:
        return run_refused(request, run, str(exc))
    messages.success(request, "Run closed as aborted.")
    return redirect(run)


@require_POST
@role_required(Role.DEVELOPER)
def run_retry(request, slug, run_id):
    run = get_object_or_404(selectors.runs_with_details(), project__slug=slug, pk=run_id)
    try:
        retried = triggers.request_retry(run=run, user=request.user)
    except triggers.AlreadyQueued as exc:
        return already_queued(request, exc)
    except triggers.TriggerRefused as exc:
        return run_refused(request, run, str(exc))
    return run_requested(request, retried)


DORA_PERIODS = (7, 30, 90)


@require_GET
@role_required()
def project_dora(request, slug):
    project = get_object_or_404(Project, slug=slug)
    days = ascii_int(request.GET.get("days", ""))
    days = days if days in DORA_PERIODS else 30
    keys = dora.four_keys(project, days=days)
    segments = [
        ("build", "Build"),
        ("staging_tests", "Staging tests"),
        ("waiting_for_approval", "Waiting for approval"),
        ("production_pipeline", "Production pipeline"),
    ]
    hours = [[(getattr(lead, name).total_seconds() / 3600 if getattr(lead, name) else None)
              for lead in keys.lead_times] for name, _ in segments]
    context = {
        "project": project,
        "days": days,
        "periods": DORA_PERIODS,
        "keys": keys,
        "band": keys.bands(),
        "band_definitions": [(label, dora.BANDS[key]) for key, label in dora.KEY_LABELS.items()],
        "segments": [(label, keys.median_segment(name)) for name, label in segments],
        "lead_time_chart": charts.stacked_bar_chart(
            [charts.Series(label, values) for (_, label), values in zip(segments, hours, strict=True)],
            x_labels=[f"{lead.deployed_at:%b %d}" for lead in keys.lead_times],
            x_name="Deployed",
            y_unit="h",
            title="Lead time of each production deployment, by part",
        ),
    }
    return render(request, "deliveries/dora.html", context)
