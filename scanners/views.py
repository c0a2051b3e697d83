from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.roles import role_required
from scanners import selectors
from scanners.models import Report, ReportKind, Severity

FINDINGS_PER_PAGE = 100


@require_GET
@role_required()
def report_detail(request, report_id):
    try:
        report = selectors.report_with_run(report_id)
    except Report.DoesNotExist:
        raise Http404("No such report") from None
    context = {"report": report, "run": report.run}
    if report.kind == ReportKind.TRIVY:
        severity = request.GET.get("severity", "")
        query = request.GET.get("q", "").strip()[:200]
        sort = request.GET.get("sort", "severity")
        findings = selectors.report_findings(report, severity=severity, query=query, sort=sort)
        context.update(
            page=Paginator(findings, FINDINGS_PER_PAGE).get_page(request.GET.get("page")),
            severities=Severity.choices,
            severity=severity,
            query=query,
            sort=sort,
        )
    elif report.kind == ReportKind.GAUNTLT:
        context["scenarios"] = selectors.report_scenarios(report)
    elif report.kind == ReportKind.JMETER:
        context["load_stats"] = selectors.report_load_stats(report)
    return render(request, "scanners/report_detail.html", context)
