"""The environment pages and the operators' actions on them.

Every action has a confirmation step: its GET shows what will happen (and the freeze window in force, if any), its
POST does it. The actions only queue work (environments.deployments, django-q2): a request never waits on the engine.
"""

from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_q.tasks import async_task

from environments import selectors
from environments.deployments import DeploymentRefused, request_deployment, request_rollback
from environments.forms import ConfirmForm, DeployRunForm
from environments.models import Deployment, DeploymentKind, DeploymentStatus, Environment
from environments.stack_selectors import stack_panel
from portal import charts
from portal.pagination import CappedCountPaginator
from portal.roles import Role, has_role, role_required

DEPLOYMENTS_PER_PAGE = 25
CHECKS_LISTED = 20


@require_GET
@role_required()
def environment_list(request):
    serving = selectors.with_health(selectors.current_deployments().select_related("project"))
    by_environment: dict[int, list] = {}
    for deployment in serving:
        by_environment.setdefault(deployment.environment_id, []).append(deployment)
    now = timezone.now()
    environments = Environment.objects.order_by("order", "name").prefetch_related(
        Prefetch("freeze_windows", queryset=selectors.frozen_at(now), to_attr="active_freezes"))
    rows = [(environment, sorted(by_environment.get(environment.pk, []), key=lambda d: d.project.name))
            for environment in environments]
    return render(request, "environments/environment_list.html", {"rows": rows})


def environment_context(request, environment: Environment) -> dict:
    now = timezone.now()
    checks = selectors.recent_checks(environment)
    return {
        "environment": environment,
        "serving": sorted(selectors.with_health(selectors.current_deployments().filter(environment=environment)
                                                .select_related("project")), key=lambda d: d.project.name),
        # the deployments only grow: counted up to the cap ("1,000+ deployments")
        "page": CappedCountPaginator(selectors.environment_deployments(environment), DEPLOYMENTS_PER_PAGE).get_page(
            request.GET.get("page")),
        "freezes": selectors.coming_freezes(environment, now=now),
        "stack_panel": stack_panel(environment),  # the stack, its events and the hosts with their EC2 state
        "health_chart": health_chart(checks),
        "checks": checks[::-1][:CHECKS_LISTED],
        "check_interval_minutes": int(selectors.check_interval().total_seconds() // 60),
        "deploy_form": DeployRunForm(),
        "deployable": selectors.deployable_runs()[:selectors.DEPLOYABLE_RUNS],
        "can_operate": has_role(request.user, Role.OPERATOR),
        "now": now,
    }


def health_chart(checks):
    """Latency of each answer, green when healthy and red when failing; a check without an answer has no bar (the
    table under the chart lists it with its error)."""
    labels = [f"{timezone.localtime(check.checked_at):%m-%d %H:%M}" for check in checks]
    latency = [check.latency_ms for check in checks]
    return charts.stacked_bar_chart(
        [charts.Series("healthy", [v if check.ok else None for v, check in zip(latency, checks, strict=True)],
                       color=charts.SCENARIO_COLORS["passed"]),
         charts.Series("failing", [v if not check.ok else None for v, check in zip(latency, checks, strict=True)],
                       color=charts.SCENARIO_COLORS["failed"])],
        x_labels=labels, y_unit="ms", title="Availability checks: response time, newest last",
    )


@require_GET
@role_required()
def environment_detail(request, slug):
    environment = get_object_or_404(Environment, slug=slug)
    return render(request, "environments/environment_detail.html", environment_context(request, environment))


def deployment_context(request, deployment: Deployment) -> dict:
    current = selectors.current_deployments().filter(project=deployment.project_id,
                                                     environment=deployment.environment_id).first()
    return {
        "deployment": deployment,
        "rollbacks": deployment.replaced_by.filter(kind=DeploymentKind.ROLLBACK).order_by("pk"),
        "checks": deployment.checks.order_by("-checked_at")[:CHECKS_LISTED],
        "can_roll_back": (has_role(request.user, Role.OPERATOR) and deployment.status == DeploymentStatus.SUCCESS
                          and deployment.source_run_id is not None and current is not None
                          and current.pk != deployment.pk),
        "can_redeploy": (has_role(request.user, Role.OPERATOR) and current is not None
                         and current.pk == deployment.pk),
    }


def deployment_queryset():
    return Deployment.objects.select_related("project", "environment", "source_run", "deployed_by", "replaced")


@require_GET
@role_required()
def deployment_detail(request, deployment_id):
    deployment = get_object_or_404(deployment_queryset(), pk=deployment_id)
    return render(request, "environments/deployment_detail.html", deployment_context(request, deployment))


@never_cache
@require_GET
@role_required()
def deployment_live(request, deployment_id):
    """The changing part of the deployment page (status and step log), polled by portal/live.js."""
    deployment = get_object_or_404(deployment_queryset(), pk=deployment_id)
    return render(request, "environments/_deployment_live.html", deployment_context(request, deployment))


# --- operators' actions ------------------------------------------------------------------------------------------


def confirm(request, *, environment, action: str, url: str, form, facts: list, status: int = 200,
            frozen: bool = True):
    context = {"environment": environment, "action": action, "action_url": url, "form": form, "facts": facts,
               "freeze": selectors.active_freeze(environment_id=environment.pk) if frozen else None}
    return render(request, "environments/confirm.html", context, status=status)


def confirmed(request, *, form, act, **confirmation):
    """GET shows the confirmation; POST validates it and requests the deployment (`act(override_reason)`), then
    shows its page; a refusal shows the confirmation again, saying why (409)."""
    if request.method == "GET":
        return confirm(request, form=form, **confirmation)
    if not form.is_valid():
        return confirm(request, form=form, status=400, **confirmation)
    try:
        deployment = act(form.cleaned_data["freeze_override_reason"])
    except DeploymentRefused as refusal:
        messages.error(request, str(refusal))
        return confirm(request, form=form, status=409, **confirmation)
    messages.success(request, f"{deployment.get_kind_display()} #{deployment.pk} of {deployment.project} to "
                              f"{deployment.environment} queued: its steps show below as they happen.")
    return redirect(deployment)


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def deploy_run(request, slug):
    environment = get_object_or_404(Environment, slug=slug)
    form = DeployRunForm(request.POST if request.method == "POST" else request.GET)
    action = f"Deploy to {environment}"
    if not form.is_valid():
        return confirm(request, environment=environment, action=action, url=request.path, form=form, facts=[],
                       status=400)
    run = form.cleaned_data["run"]
    current = selectors.current_deployments(run.project).filter(environment=environment).first()
    return confirmed(
        request, form=form, environment=environment, action=action, url=request.path,
        facts=[("Project", run.project.name), ("Run", run),
               ("Images", ", ".join(str(a) for a in run.artifacts.order_by("pk"))), replaces(current)],
        act=lambda reason: request_deployment(project=run.project, environment=environment, run=run,
                                              user=request.user, freeze_override_reason=reason),
    )


def replaces(current: Deployment | None) -> tuple[str, object]:
    return ("Replaces", current.source_run if current and current.source_run else "nothing")


def redeploy_current(current: Deployment, *, user, reason: str) -> Deployment:
    if current.source_run is None:
        raise DeploymentRefused(f"Deployment #{current.pk} has lost its run: its images are not known.")
    return request_deployment(project=current.project, environment=current.environment, run=current.source_run,
                              kind=DeploymentKind.REDEPLOY, user=user, artifacts=list(current.artifacts.order_by("pk")),
                              freeze_override_reason=reason)


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def redeploy(request, deployment_id):
    """Deploy again what runs now (new containers from the same digests)."""
    current = get_object_or_404(deployment_queryset(), pk=deployment_id)
    return confirmed(
        request, form=ConfirmForm(request.POST if request.method == "POST" else None),
        environment=current.environment, url=request.path,
        action=f"Redeploy {current.project} in {current.environment}",
        facts=[("Project", current.project.name), ("Run", current.source_run or "—"),
               ("Images", ", ".join(current.image_digests) or "—")],
        act=lambda reason: redeploy_current(current, user=request.user, reason=reason),
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def roll_back(request, deployment_id):
    """Deploy again the images of an earlier successful deployment, recorded as a rollback."""
    target = get_object_or_404(deployment_queryset(), pk=deployment_id)
    current = selectors.current_deployments(target.project).filter(environment=target.environment).first()
    return confirmed(
        request, form=ConfirmForm(request.POST if request.method == "POST" else None),
        environment=target.environment, url=request.path,
        action=f"Roll {target.project} in {target.environment} back to deployment #{target.pk}",
        facts=[("Project", target.project.name), ("Back to", target.source_run or "—"),
               ("Images", ", ".join(target.image_digests) or "—"), replaces(current)],
        act=lambda reason: request_rollback(to=target, user=request.user, freeze_override_reason=reason),
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def check_now(request, slug):
    environment = get_object_or_404(Environment, slug=slug)
    confirmation = {"environment": environment, "url": request.path, "form": None, "frozen": False,
                    "action": f"Check the availability of {environment} now",
                    "facts": [("Health URL", environment.health_url or "none: nothing to check")]}
    if request.method == "GET":
        return confirm(request, **confirmation)
    if not environment.health_url:
        messages.error(request, f"{environment} has no health URL: there is nothing to check.")
        return confirm(request, status=409, **confirmation)
    async_task("environments.tasks.check_environment", environment.pk, task_name=f"check {environment.slug}")
    messages.success(request, f"Availability check of {environment} queued: its result shows below in a moment.")
    return redirect(environment)
