"""Reads for the report pages."""

from django.db.models import Case, IntegerField, Q, Value, When

from scanners.models import Finding, Report, Severity

FINDING_SORTS = {
    "severity": ["severity_rank", "identifier"],
    "identifier": ["identifier"],
    "package": ["package", "identifier"],
    "class": ["finding_class", "severity_rank"],
}
SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.UNKNOWN]


def report_with_run(report_id: int) -> Report:
    return Report.objects.select_related("run__project").get(pk=report_id)


def report_findings(report: Report, *, severity: str = "", query: str = "", sort: str = "severity"):
    findings = Finding.objects.filter(report=report).annotate(
        severity_rank=Case(
            *[When(severity=value, then=Value(rank)) for rank, value in enumerate(SEVERITY_ORDER)],
            output_field=IntegerField(),
        )
    )
    if severity in Severity.values:
        findings = findings.filter(severity=severity)
    if query:
        findings = findings.filter(
            Q(identifier__icontains=query) | Q(package__icontains=query) | Q(title__icontains=query)
            | Q(target__icontains=query)
        )
    return findings.order_by(*FINDING_SORTS.get(sort, FINDING_SORTS["severity"]), "id")


def report_scenarios(report: Report):
    return report.scenarios.order_by("id")


def report_load_stats(report: Report):
    return report.load_stats.order_by("is_total", "label")
