"""Pages of the promotion flow. Views parse the request, call one service, answer; the services check who may."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveries.models import PipelineRun, Project, Promotion, PromotionState
from portal.pagination import CappedCountPaginator
from portal.roles import Role, has_role, role_required
from promotions import selectors, services
from promotions.forms import DecisionForm, GateConditionFormSet, WaiverForm

PROMOTIONS_PER_PAGE = 30
AUDIT_PER_PAGE = 50


def refused(exc: services.PromotionRefused):
    if exc.forbidden:
        raise PermissionDenied(exc.reason)


@require_POST
@role_required(Role.DEVELOPER, Role.TECHLEAD)
def request_promotion(request, slug, run_id):
    run = get_object_or_404(PipelineRun.objects.select_related("project"), project__slug=slug, pk=run_id)
    try:
        promotion = services.request_promotion(run=run, user=request.user)
    except services.PromotionRefused as exc:
        refused(exc)
        messages.warning(request, exc.reason)
        return redirect(run)
    messages.success(request, "Promotion requested: tech leads are told, and the merge request is opened in GitLab.")
    return redirect(promotion)


@require_GET
@role_required()
def promotion_list(request, slug):
    project = get_object_or_404(Project, slug=slug)
    # the promotions only grow: counted up to the cap ("1,000+ promotions")
    page = CappedCountPaginator(selectors.project_promotions(project), PROMOTIONS_PER_PAGE).get_page(
        request.GET.get("page"))
    return render(request, "promotions/promotion_list.html", {"project": project, "page": page})


def detail_context(request, promotion: Promotion, *, form=None) -> dict:
    # What a decision is judged on: the frozen gate with the waivers in force now, until the decision freezes it.
    gate = services.current_gate(promotion) if promotion.state == PromotionState.REQUESTED else (
        promotion.decision_gate or promotion.gate_snapshot)
    can_decide = (promotion.state == PromotionState.REQUESTED and has_role(request.user, Role.TECHLEAD)
                  and request.user.pk != promotion.requested_by_id)
    return {
        "project": promotion.project,
        "promotion": promotion,
        "gate": gate,
        "frozen": promotion.gate_snapshot,
        "can_decide": can_decide,
        "own_request": promotion.requested_by_id == request.user.pk,
        "form": form or DecisionForm(),
    }


@require_GET
@role_required()
def promotion_detail(request, slug, promotion_id):
    project = get_object_or_404(Project, slug=slug)
    promotion = get_object_or_404(selectors.promotions_with_details(), project=project, pk=promotion_id)
    return render(request, "promotions/promotion_detail.html", detail_context(request, promotion))


@require_GET
@role_required()
def promotion_evidence(request, slug, promotion_id):
    """What the promotion rests on, printable; `?format=json` answers the same content as JSON."""
    project = get_object_or_404(Project, slug=slug)
    promotion = get_object_or_404(selectors.promotions_with_details(), project=project, pk=promotion_id)
    document = selectors.evidence_document(promotion)
    if request.GET.get("format") == "json":
        return JsonResponse(document, json_dumps_params={"indent": 2})
    return render(request, "promotions/evidence.html",
                  {"project": project, "promotion": promotion, "evidence": document})


@require_POST
@role_required(Role.TECHLEAD)
def promotion_decide(request, slug, promotion_id, decision):
    project = get_object_or_404(Project, slug=slug)
    promotion = get_object_or_404(selectors.promotions_with_details(), project=project, pk=promotion_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return render(request, "promotions/promotion_detail.html", detail_context(request, promotion, form=form),
                      status=400)
    decide = services.approve_promotion if decision == "approve" else services.reject_promotion
    try:
        decide(promotion=promotion, user=request.user, comment=form.cleaned_data["comment"])
    except services.PromotionRefused as exc:
        refused(exc)
        messages.warning(request, exc.reason)
        return render(request, "promotions/promotion_detail.html", detail_context(request, promotion, form=form),
                      status=400 if exc.invalid else 409)
    messages.success(request, "Approved: the portal merges it in GitLab now." if decision == "approve" else
                     "Rejected: the requester is told.")
    return redirect(promotion)


@require_http_methods(["GET", "POST"])
@role_required()
def gate_edit(request, slug):
    """Every role reads the gate; tech leads edit it."""
    project = get_object_or_404(Project, slug=slug)
    can_edit = has_role(request.user, Role.TECHLEAD)
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("Only tech leads edit the quality gate.")
    gate = services.ensure_default_gate(project=project)
    formset = GateConditionFormSet(request.POST or None, instance=gate)
    if request.method == "POST" and formset.is_valid():
        services.save_gate(project=project, user=request.user, formset=formset)
        messages.success(request, "Quality gate saved: it applies to the next promotion requests.")
        return redirect("project-gate", project.slug)
    context = {"project": project, "formset": formset, "can_edit": can_edit,
               "conditions": gate.conditions.order_by("pk")}
    return render(request, "promotions/gate_edit.html", context, status=400 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
@role_required()
def waivers(request, slug):
    project = get_object_or_404(Project, slug=slug)
    form = WaiverForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not has_role(request.user, Role.TECHLEAD):
            raise PermissionDenied("Only tech leads grant waivers.")
        if form.is_valid():
            try:
                with transaction.atomic():
                    services.create_waiver(project=project, user=request.user, **form.cleaned_data)
            except services.PromotionRefused as exc:
                form.add_error(None, exc.reason)
            else:
                messages.success(request, "Waiver granted.")
                return redirect("project-waivers", project.slug)
        status = 400
    context = {"project": project, "form": form, "waivers": selectors.project_waivers(project),
               "can_grant": has_role(request.user, Role.TECHLEAD)}
    return render(request, "promotions/waivers.html", context, status=status)


@require_GET
@role_required()
def audit_log(request, slug):
    project = get_object_or_404(Project, slug=slug)
    # the audit log only grows: counted up to the cap ("1,000+ events")
    page = CappedCountPaginator(selectors.project_audit(project), AUDIT_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "promotions/audit.html", {"project": project, "page": page})
