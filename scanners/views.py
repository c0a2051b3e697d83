"""Report page, the raw report's download, and the security, performance and attack dashboards of a run or a project.

Views parse the query string, call selectors, and turn what they return into charts (portal.charts).
Every page needs a role (any); a run is always looked up within its project, so another project's run
id is a 404.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousFileOperation
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.views.decorators.http import require_GET, require_POST

from deliveries import selectors as delivery_selectors
from deliveries.models import Project
from environments import selectors as environment_selectors
from portal import charts
from portal.roles import Role, has_role, role_required
from scanners import selectors, services
from scanners.models import FindingClass, Report, ReportKind, ReportStatus, Severity

FINDINGS_PER_PAGE = 100
FIXED_PER_PAGE = 25
TREND_LABELS = 8  # lines of the p95 trend, besides the total


@require_GET
@role_required()
def report_detail(request, report_id):
    try:
        report = selectors.report_with_run(report_id)
    except Report.DoesNotExist:
        raise Http404("No such report") from None
    context = {"report": report, "run": report.run, "raw_file_ready": raw_file_ready(report),
               "can_parse_again": can_parse_again(request.user, report),
               "parse_attempts_allowed": settings.REPORT_PARSE_ATTEMPTS}
    if report.kind == ReportKind.TRIVY:
        production_run = environment_selectors.production_run(report.run.project_id)
        findings = selectors.findings(report=report, production_run=production_run, **finding_filters(request))
        context.update(findings_context(request, findings))
        context["production_run"] = production_run
        context["not_in_production"] = selectors.not_in_production_count(report.findings.all(), production_run)
    elif report.kind == ReportKind.GAUNTLT:
        context["scenarios"] = selectors.report_scenarios(report)
    elif report.kind == ReportKind.JMETER:
        context["load_stats"] = selectors.report_load_stats(report)
    return render(request, "scanners/report_detail.html", context)


def can_parse_again(user, report) -> bool:
    return bool(report.file) and (report.status == ReportStatus.FAILED or report.is_stuck) and has_role(
        user, Role.OPERATOR)


@require_POST
@role_required(Role.OPERATOR)
def report_parse_again(request, report_id):
    """Parse a failed or stuck report again from its raw file (operators; superusers hold every role)."""
    report = get_object_or_404(Report, pk=report_id)
    if request.POST.get("confirm") != "yes":
        messages.warning(request, "Tick the box to confirm: what was parsed out of the report is replaced.")
        return redirect(report)
    try:
        services.request_parse_again(report=report, user=request.user)
    except services.ParseRefused as exc:
        messages.warning(request, str(exc))
        return redirect(report)
    messages.success(request, "The report is queued to be parsed again.")
    return redirect(report)


def raw_file_ready(report) -> bool:
    """Whether the stored raw file may be handed out: only once parsed, when its secrets are masked
    (scanners.services.mask_stored_secrets). A failed report keeps its error, not its raw file."""
    return bool(report.file) and report.status == ReportStatus.PARSED


@require_GET
@role_required()
def report_download(request, report_id):
    """The raw report as stored, streamed from storage as an attachment that no browser renders."""
    report = get_object_or_404(Report, pk=report_id)
    if report.file and report.status == ReportStatus.FAILED:
        return HttpResponse("A report that failed to parse is not handed out: its secrets could not be masked.",
                            status=409, content_type="text/plain; charset=utf-8")
    if report.file and not raw_file_ready(report):
        return HttpResponse("The report is still being parsed: download it once parsed (secrets are masked then).",
                            status=409, content_type="text/plain; charset=utf-8")
    if not report.file or not report.file.storage.exists(report.file.name):
        raise Http404("This report's raw file is not kept.")
    response = FileResponse(report.file.open("rb"), as_attachment=True, filename=download_name(report),
                            content_type="application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    return response


def download_name(report) -> str:
    """The uploaded name, reduced to letters, digits, dots, dashes and underscores (nothing a header can break on)."""
    try:
        return get_valid_filename(report.original_name)
    except SuspiciousFileOperation:  # empty, "." or ".."
        return f"report-{report.pk}"


# --- security --------------------------------------------------------------------------------------------------


@require_GET
@role_required()
def run_security(request, slug, run_id):
    return render_run_view(request, slug, run_id, tab="security", template="scanners/security.html",
                           run_context=lambda run: security_context(request, run))


@require_GET
@role_required()
def project_security(request, slug):
    return render_project_view(request, slug, kind=ReportKind.TRIVY, tab="security", template="scanners/security.html",
                               run_context=lambda run: security_context(request, run))


def security_context(request, run) -> dict:
    production_run = environment_selectors.production_run(run.project_id)
    summary = selectors.security_summary(run, production_run=production_run)
    filters = finding_filters(request)
    context = {"summary": summary, "comparison_basis": selectors.COMPARISON_BASIS}
    if summary.reports:
        context.update(findings_context(request, selectors.findings(run=run, production_run=production_run, **filters)))
        if summary.compared_with_run_id:
            fixed = selectors.fixed_findings(run, summary)
            context["fixed_page"] = with_short_names(
                Paginator(fixed, FIXED_PER_PAGE).get_page(request.GET.get("fixed_page"))
            )
    trend = selectors.security_trend(run)
    context["trend_chart"] = charts.stacked_bar_chart(
        [charts.Series(Severity(value).label, [point.values[value] for point in trend],
                       charts.SEVERITY_COLORS[value]) for value in selectors.SEVERITY_ORDER],
        x_labels=[point.label for point in trend],
        x_links=[reverse("run-security", args=[run.project.slug, point.run_id]) for point in trend],
        title=f"Findings by severity, last {len(trend)} scanned runs of {run.branch}",
        width=900,
        height=260,
    )
    return context


def findings_context(request, findings) -> dict:
    """What scanners/_findings.html needs: a page of findings and the filters that chose them."""
    return {
        "page": with_short_names(Paginator(findings, FINDINGS_PER_PAGE).get_page(request.GET.get("page"))),
        "filters": finding_filters(request),
        "severities": Severity.choices,
        "classes": FindingClass.choices,
        "new_filters": selectors.NEW_FILTERS,
    }


def with_short_names(page):
    """Give the page's findings `image` (the image name without registry and group) and `short_target` (the
    target with the image so shortened), for narrow columns; the full names stay in a tooltip."""
    page.object_list = list(page.object_list)
    for finding in page.object_list:
        finding.image = finding.artifact_name.rsplit("/", 1)[-1]
        if finding.artifact_name and finding.target.startswith(finding.artifact_name):
            finding.short_target = finding.image + finding.target[len(finding.artifact_name):]
        else:
            finding.short_target = finding.target
    return page


def finding_filters(request) -> dict:
    get = request.GET
    return {
        "severity": value_in(get.get("severity", ""), Severity.values),
        "finding_class": value_in(get.get("class", ""), FindingClass.values),
        "query": get.get("q", "").strip()[:200],
        "sort": value_in(get.get("sort", ""), selectors.FINDING_SORTS) or "severity",
        "new": value_in(get.get("new", ""), selectors.NEW_FILTERS),
    }


def value_in(value: str, allowed) -> str:
    return value if value in allowed else ""


def render_run_view(request, slug, run_id, *, tab, template, run_context):
    """A run's dashboard; the run is looked up within its project, so another project's run id is a 404."""
    run = get_object_or_404(selectors.runs_with_project(), project__slug=slug, pk=run_id)
    return render(request, template, {"project": run.project, "run": run, "tab": tab, **run_context(run)})


def render_project_view(request, slug, *, kind, tab, template, run_context):
    """A project's dashboard: the view of its latest run on the branch that has a parsed report of `kind`."""
    project = get_object_or_404(Project, slug=slug)
    branch = project_branch(request, project)
    run = selectors.latest_run_with_reports(project, branch=branch, kind=kind)
    context = {
        "project": project,
        "run": run,
        "tab": tab,
        "project_view": True,
        "branch": branch,
        "branches": delivery_selectors.project_branches(project),
    }
    if run is not None:
        context.update(run_context(run))
    return render(request, template, context)


def project_branch(request, project) -> str:
    return request.GET.get("branch", "").strip()[:255] or project.dev_branch


# --- performance -----------------------------------------------------------------------------------------------


@require_GET
@role_required()
def run_performance(request, slug, run_id):
    return render_run_view(request, slug, run_id, tab="performance", template="scanners/performance.html",
                           run_context=performance_context)


@require_GET
@role_required()
def project_performance(request, slug):
    return render_project_view(request, slug, kind=ReportKind.JMETER, tab="performance",
                               template="scanners/performance.html", run_context=performance_context)


def performance_context(run) -> dict:
    reports = selectors.parsed_reports(run, ReportKind.JMETER)
    production_run = environment_selectors.production_run(run.project_id)
    baseline = selectors.production_load_stats(production_run)
    rows = selectors.compare_stats(selectors.load_stats(reports), baseline)
    chart_report = reports[-1] if reports else None
    buckets = selectors.load_buckets(chart_report)
    times = [timezone.localtime(bucket.started_at).strftime("%H:%M:%S") for bucket in buckets]
    trend = selectors.p95_trend(run)
    current_labels = [row.label for row in rows if not row.is_total and row.report_id == getattr(chart_report, "pk", 0)]
    trend_labels = (current_labels or trend.labels)[:TREND_LABELS]
    return {
        "reports": reports,
        "chart_report": chart_report,
        "rows": rows,
        "production_run": production_run,
        "baseline_found": bool(baseline),
        "response_chart": charts.line_chart(
            [
                charts.Series("mean", [bucket.mean_ms if bucket.samples else None for bucket in buckets]),
                charts.Series("p95", [bucket.p95_ms if bucket.samples else None for bucket in buckets]),
            ],
            x_labels=times, y_unit="ms", width=900,
            title=f"Response time over the test (times in {timezone.get_current_timezone_name()})",
        ),
        "throughput_chart": charts.bar_chart(
            [charts.Series("samples/s", [bucket.samples / (bucket.width_seconds or 1) for bucket in buckets])],
            x_labels=times, y_unit="/s", title="Throughput over the test", width=900,
        ),
        "trend_chart": charts.line_chart(
            [charts.Series(label, [point.values.get(label) for point in trend.points]) for label in trend_labels]
            + [charts.Series("Total", [point.values.get(selectors.TOTAL_KEY) for point in trend.points], "#1d2330")],
            x_labels=[point.label for point in trend.points],
            y_unit="ms",
            title=f"p95 per label, last {len(trend.points)} load-tested runs of {run.branch}",
            width=900,
            height=280,
        ),
    }


# --- attacks ---------------------------------------------------------------------------------------------------


@require_GET
@role_required()
def run_attacks(request, slug, run_id):
    return render_run_view(request, slug, run_id, tab="attacks", template="scanners/attacks.html",
                           run_context=attacks_context)


@require_GET
@role_required()
def project_attacks(request, slug):
    return render_project_view(request, slug, kind=ReportKind.GAUNTLT, tab="attacks", template="scanners/attacks.html",
                               run_context=attacks_context)


def attacks_context(run) -> dict:
    summary = selectors.attack_summary(run)
    trend = selectors.attack_trend(run)
    return {
        "summary": summary,
        "scenarios": selectors.attack_scenarios(summary.reports) if summary.reports else [],
        "trend_chart": charts.stacked_bar_chart(
            [
                charts.Series("passed", [point.values["passed"] for point in trend], charts.SCENARIO_COLORS["passed"]),
                charts.Series("failed", [point.values["failed"] for point in trend], charts.SCENARIO_COLORS["failed"]),
                charts.Series("not run / other", [point.values["other"] for point in trend],
                              charts.SCENARIO_COLORS["other"]),
            ],
            x_labels=[point.label for point in trend],
            x_links=[reverse("run-attacks", args=[run.project.slug, point.run_id]) for point in trend],
            title=f"Attack scenarios, last {len(trend)} attacked runs of {run.branch}",
            width=900,
        ),
    }
