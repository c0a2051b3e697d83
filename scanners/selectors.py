"""Reads for the report page and the security, performance and attack dashboards.

Every function fetches what its page shows in a fixed number of queries, whatever the number of runs,
reports or findings: counts come from the reports' `summary` (written once at ingestion, see
scanners.services), lists are paginated by the views, trends read the last TREND_RUNS runs in one query.
What production runs changes after ingestion, so the comparison with production is made when a page is read,
in the database (`with_production_flag`, `not_in_production_count`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import BooleanField, Case, Exists, F, IntegerField, OuterRef, Q, Value, When

from deliveries.models import PipelineRun, Project, run_label
from scanners.models import (
    AttackScenario,
    Finding,
    FindingClass,
    LoadTestBucket,
    LoadTestStat,
    Report,
    ReportKind,
    ReportStatus,
    ScenarioStatus,
    Severity,
)

TREND_RUNS = 30
FINDING_SORTS = {
    "severity": ["severity_rank", "identifier"],
    "identifier": ["identifier"],
    "package": ["package", "identifier"],
    "class": ["finding_class", "severity_rank"],
}
SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.UNKNOWN]
NEW_FILTERS = {"branch": "new on the branch", "production": "not in production"}
COMPARISON_BASIS = (
    "Each image is compared with its scan in the latest earlier build of the branch that scanned it: a finding is new "
    "if that scan did not have it, persisting if it did; fixed counts what that scan had and this one has not."
)


# --- runs and reports ------------------------------------------------------------------------------------------


def report_with_run(report_id: int) -> Report:
    return Report.objects.select_related("run__project").get(pk=report_id)


def runs_with_project():
    return PipelineRun.objects.select_related("project")


def parsed_reports(run: PipelineRun, kind: str) -> list[Report]:
    """The run's parsed reports of one kind, oldest first."""
    return list(Report.objects.filter(run=run, kind=kind, status=ReportStatus.PARSED).order_by("created_at", "id"))


def has_parsed(kind: str):
    return Exists(Report.objects.filter(run=OuterRef("pk"), kind=kind, status=ReportStatus.PARSED))


def latest_run_with_reports(project: Project, *, branch: str, kind: str) -> PipelineRun | None:
    """The newest run of the branch that has a parsed report of this kind."""
    return (
        PipelineRun.objects.select_related("project")
        .filter(project=project, branch=branch)
        .filter(has_parsed(kind))
        .order_by("-created_at", "-id")
        .first()
    )


def runs_by_id(ids) -> dict[int, PipelineRun]:
    ids = {pk for pk in ids if pk}
    if not ids:
        return {}
    return PipelineRun.objects.in_bulk(ids)


# --- the comparison basis: one rule for new, persisting and fixed -------------------------------------------------


def earlier_in_build_order(run: PipelineRun) -> Q:
    """Runs built before `run`: a lower build number (runs without one, not yet numbered by Jenkins, come after
    every numbered run, in the order they were made)."""
    if run.build_number is None:
        return Q(build_number__isnull=False) | Q(build_number__isnull=True, pk__lt=run.pk)
    return Q(build_number__lt=run.build_number)


def comparison_basis(run: PipelineRun, artifact_name: str) -> PipelineRun | None:
    """The run whose scan of the same image a scan of `artifact_name` in `run` is compared with: the latest
    earlier run of the same branch, in build order, with a parsed Trivy report of that image (COMPARISON_BASIS)."""
    scanned = Report.objects.filter(
        run=OuterRef("pk"), kind=ReportKind.TRIVY, status=ReportStatus.PARSED, summary__artifact_name=artifact_name
    )
    return (
        PipelineRun.objects.filter(project_id=run.project_id, branch=run.branch)
        .filter(earlier_in_build_order(run))
        .filter(Exists(scanned))
        .order_by(F("build_number").desc(nulls_first=True), "-id")
        .first()
    )


def fingerprints_of(run: PipelineRun, *, artifact_name: str) -> set[str]:
    return set(Finding.objects.filter(run=run, artifact_name=artifact_name).values_list("fingerprint", flat=True))


def same_finding_in(run_id) -> Exists:
    """Whether the run has the finding (the same fingerprint in the same image); for annotating findings."""
    same = Finding.objects.filter(artifact_name=OuterRef("artifact_name"), fingerprint=OuterRef("fingerprint"))
    return Exists(same.filter(run_id=run_id))


def with_production_flag(findings, production_run: PipelineRun | None):
    """Annotate `new_vs_production`: absent from what production runs now; None when nothing runs there."""
    if production_run is None:
        return findings.annotate(new_vs_production=Value(None, output_field=BooleanField()))
    return findings.annotate(new_vs_production=~same_finding_in(production_run.pk))


def not_in_production_count(findings, production_run: PipelineRun | None) -> int | None:
    """How many of `findings` what production runs now does not have; None when nothing runs there. One query."""
    if production_run is None:
        return None
    return findings.filter(~same_finding_in(production_run.pk)).count()


def trend_runs(run: PipelineRun, kind: str, *, limit: int = TREND_RUNS):
    """Ids of the last `limit` runs of the run's branch, up to and including it, with a parsed report of kind.

    A subquery: the callers read what they chart of those runs in the same query.
    """
    return (
        # created_at <= the run's as a bound of its own: the index (project, branch, -created_at) is read from the run
        # down, not from the branch's newest run (the OR alone is a filter, not a range)
        PipelineRun.objects.filter(project_id=run.project_id, branch=run.branch, created_at__lte=run.created_at)
        .filter(Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, id__lte=run.id))
        .filter(has_parsed(kind))
        .order_by("-created_at", "-id")
        .values("id")[:limit]
    )


@dataclass
class TrendPoint:
    run_id: int
    build_number: int | None
    values: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return run_label(build_number=self.build_number, pk=self.run_id)


def summary_trend(run: PipelineRun, kind: str, *, counts: dict[str, str]) -> list[TrendPoint]:
    """Per run of the trend (oldest first): the sum over its reports of `summary[path]` for each
    `counts` name -> path ("by_severity.HIGH", "failed"). One query."""
    rows = (
        Report.objects.filter(run_id__in=trend_runs(run, kind), kind=kind, status=ReportStatus.PARSED)
        .order_by("run__created_at", "run_id", "id")
        .values_list("run_id", "run__build_number", "summary")
    )
    points: dict[int, TrendPoint] = {}
    for run_id, build_number, summary in rows:
        point = points.setdefault(run_id, TrendPoint(run_id, build_number, {name: 0 for name in counts}))
        for name, path in counts.items():
            point.values[name] += _summary_number(summary, path)
    return list(points.values())


def _summary_number(summary, path: str) -> int:
    value = summary
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- security --------------------------------------------------------------------------------------------------


@dataclass
class SecuritySummary:
    """The sum of the `summary` of a run's parsed Trivy reports, and how the run compares with production now."""

    reports: list[Report]
    findings: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: {value: 0 for value in SEVERITY_ORDER})
    by_class: dict[str, int] = field(default_factory=lambda: {value: 0 for value in FindingClass.values})
    new: int = 0
    persisting: int = 0
    fixed: int = 0
    new_vs_production: int | None = None
    compared_with_run_id: int | None = None
    artifact_names: list[str] = field(default_factory=list)
    compared_with_run: PipelineRun | None = None
    production_run: PipelineRun | None = None

    @property
    def severity_rows(self) -> list[tuple[str, str, int]]:
        return [(value, Severity(value).label, self.by_severity.get(value, 0)) for value in SEVERITY_ORDER]

    @property
    def class_rows(self) -> list[tuple[str, str, int]]:
        return [(value, label, self.by_class.get(value, 0)) for value, label in FindingClass.choices]


def security_summary(run: PipelineRun, *, production_run: PipelineRun | None) -> SecuritySummary:
    """Counts over the run's parsed Trivy reports, the run they were compared with, and how many findings
    `production_run` (what production runs now) does not have. Three queries at most."""
    summary = SecuritySummary(reports=parsed_reports(run, ReportKind.TRIVY), production_run=production_run)
    for report in summary.reports:
        data = report.summary or {}
        summary.findings += _summary_number(data, "findings")
        for key in summary.by_severity:
            summary.by_severity[key] += _summary_number(data, f"by_severity.{key}")
        for key in summary.by_class:
            summary.by_class[key] += _summary_number(data, f"by_class.{key}")
        summary.new += _summary_number(data, "new")
        summary.persisting += _summary_number(data, "persisting")
        summary.fixed += _summary_number(data, "fixed")
        summary.compared_with_run_id = summary.compared_with_run_id or data.get("compared_with_run")
        if data.get("artifact_name") and data["artifact_name"] not in summary.artifact_names:
            summary.artifact_names.append(data["artifact_name"])
    summary.compared_with_run = runs_by_id([summary.compared_with_run_id]).get(summary.compared_with_run_id)
    if summary.reports:
        summary.new_vs_production = not_in_production_count(run_findings(run), production_run)
    return summary


def run_findings(run: PipelineRun):
    return Finding.objects.filter(run=run, report__status=ReportStatus.PARSED)


def _with_severity_rank(findings):
    return findings.annotate(
        severity_rank=Case(
            *[When(severity=value, then=Value(rank)) for rank, value in enumerate(SEVERITY_ORDER)],
            output_field=IntegerField(),
        )
    )


def findings(
    *,
    report: Report | None = None,
    run: PipelineRun | None = None,
    severity: str = "",
    finding_class: str = "",
    query: str = "",
    sort: str = "severity",
    new: str = "",
    production_run: PipelineRun | None = None,
):
    """Findings of a report, or of all the parsed Trivy reports of a run, filtered and sorted, each flagged
    `new_vs_production` against `production_run` (what production runs now)."""
    if report is not None:
        selected = Finding.objects.filter(report=report)
    elif run is not None:
        selected = run_findings(run)
    else:
        raise ValueError("findings() needs a report or a run")
    selected = with_production_flag(_with_severity_rank(selected), production_run)
    if severity in Severity.values:
        selected = selected.filter(severity=severity)
    if finding_class in FindingClass.values:
        selected = selected.filter(finding_class=finding_class)
    if new == "branch":
        selected = selected.filter(new_on_branch=True)
    elif new == "production":
        selected = selected.filter(new_vs_production=True)
    if query:
        selected = selected.filter(
            Q(identifier__icontains=query) | Q(package__icontains=query) | Q(title__icontains=query)
            | Q(target__icontains=query)
        )
    return selected.order_by(*FINDING_SORTS.get(sort, FINDING_SORTS["severity"]), "id")


def fixed_findings(run: PipelineRun, summary: SecuritySummary):
    """What each image's comparison basis had and this run's scan of the image has not (as `summary["fixed"]`
    counts it)."""
    bases = Q()
    for report in summary.reports:
        data = report.summary or {}
        if data.get("compared_with_run"):
            bases |= Q(run_id=data["compared_with_run"], artifact_name=data.get("artifact_name") or "")
    if not bases:
        return Finding.objects.none()
    fixed = Finding.objects.filter(bases).exclude(same_finding_in(run.pk))
    return _with_severity_rank(fixed).order_by("severity_rank", "identifier", "id")


SECURITY_TREND_COUNTS = {value: f"by_severity.{value}" for value in SEVERITY_ORDER}


def security_trend(run: PipelineRun) -> list[TrendPoint]:
    return summary_trend(run, ReportKind.TRIVY, counts=SECURITY_TREND_COUNTS)


# --- performance -----------------------------------------------------------------------------------------------


def load_stats(reports: list[Report]) -> list[LoadTestStat]:
    return list(
        LoadTestStat.objects.filter(report_id__in=[report.pk for report in reports]).order_by(
            "report_id", "is_total", "label"
        )
    )


def production_load_stats(run: PipelineRun | None) -> dict[tuple[str, bool], LoadTestStat]:
    """(label, is_total) -> statistics of the production run's load test (its newest report wins)."""
    if run is None:
        return {}
    stats = LoadTestStat.objects.filter(
        run=run, report__kind=ReportKind.JMETER, report__status=ReportStatus.PARSED
    ).order_by("report__created_at", "report_id")
    return {(stat.label, stat.is_total): stat for stat in stats}


def load_buckets(report: Report | None) -> list[LoadTestBucket]:
    if report is None:
        return []
    return list(LoadTestBucket.objects.filter(report=report).order_by("started_at"))


@dataclass
class Change:
    text: str
    css: str  # "better", "worse" or "same"


@dataclass
class Cell:
    value: str
    change: Change | None


@dataclass
class StatRow:
    label: str
    is_total: bool
    report_id: int
    cells: list[Cell]
    is_transaction: bool = False  # a Transaction Controller's label: shown, not counted in the Total
    timing_unavailable: str = ""  # why some cells say NOT_AVAILABLE


# metric, format, how the change is shown ("relative" % or percentage "points"), whether higher is better
STAT_COLUMNS = [
    ("samples", "{:,.0f}", "relative", None),
    ("error_percent", "{:.2f}", "points", False),
    ("mean_ms", "{:,.1f}", "relative", False),
    ("p50_ms", "{:,.1f}", "relative", False),
    ("p90_ms", "{:,.1f}", "relative", False),
    ("p95_ms", "{:,.1f}", "relative", False),
    ("p99_ms", "{:,.1f}", "relative", False),
    ("throughput", "{:,.2f}", "relative", True),
]
SAME_WITHIN_PERCENT = 1.0
NOT_AVAILABLE = "n/a"


def compare_stats(stats: list[LoadTestStat], baseline: dict[tuple[str, bool], LoadTestStat]) -> list[StatRow]:
    """Table rows: each figure with its change against the same label in production ("—" when absent).

    A figure that is not available (null) reads NOT_AVAILABLE, and has no change either way.
    """
    rows = []
    for stat in stats:
        base = baseline.get((stat.label, stat.is_total))
        cells = []
        for name, fmt, mode, higher_is_better in STAT_COLUMNS:
            value = getattr(stat, name)
            if value is None:
                cells.append(Cell(NOT_AVAILABLE, None))
                continue
            base_value = None if base is None else getattr(base, name)
            change = None if base_value is None else _change(value, base_value, mode, higher_is_better)
            cells.append(Cell(fmt.format(value), change))
        rows.append(StatRow(stat.label, stat.is_total, stat.report_id, cells, stat.is_transaction,
                            stat.timing_unavailable))
    return rows


def _change(value: float, base: float, mode: str, higher_is_better: bool | None) -> Change:
    if mode == "points":
        delta = value - base
        text = f"{_signed(delta, '.2f')} pt"
        size = abs(delta)
    elif base == 0:
        if value == 0:
            return Change("±0%", "same")
        delta, text, size = value, "new", 100.0
    else:
        delta = (value - base) / base * 100
        text = f"{_signed(delta, '.1f')}%"
        size = abs(delta)
    if higher_is_better is None or size < SAME_WITHIN_PERCENT or delta == 0:
        return Change(text, "same")
    return Change(text, "better" if (delta > 0) == higher_is_better else "worse")


def _signed(value: float, fmt: str) -> str:
    if round(value, 2) == 0:
        return "±0"
    return ("+" if value > 0 else "\N{MINUS SIGN}") + format(abs(value), fmt)


@dataclass
class LabelTrend:
    points: list[TrendPoint]  # values: {label: p95}, TOTAL_KEY for the total row
    labels: list[str]


TOTAL_KEY = "Total"


def p95_trend(run: PipelineRun) -> LabelTrend:
    """p95 per label over the last runs of the branch with a load test, oldest first. One query."""
    rows = (
        LoadTestStat.objects.filter(
            run_id__in=trend_runs(run, ReportKind.JMETER),
            report__kind=ReportKind.JMETER,
            report__status=ReportStatus.PARSED,
        )
        .order_by("run__created_at", "run_id", "report_id")
        .values_list("run_id", "run__build_number", "label", "is_total", "p95_ms")
    )
    points: dict[int, TrendPoint] = {}
    labels: dict[str, None] = {}
    for run_id, build_number, label, is_total, p95 in rows:
        point = points.setdefault(run_id, TrendPoint(run_id, build_number, {}))
        key = TOTAL_KEY if is_total else label
        point.values[key] = p95
        if not is_total:
            labels.setdefault(label)
    return LabelTrend(list(points.values()), sorted(labels))


# --- attacks ---------------------------------------------------------------------------------------------------


@dataclass
class AttackSummary:
    reports: list[Report]
    features: int = 0
    scenarios: int = 0
    passed: int = 0
    failed: int = 0
    other: int = 0


def attack_summary(run: PipelineRun) -> AttackSummary:
    summary = AttackSummary(reports=parsed_reports(run, ReportKind.GAUNTLT))
    for report in summary.reports:
        for key in ("features", "scenarios", "passed", "failed", "other"):
            setattr(summary, key, getattr(summary, key) + _summary_number(report.summary or {}, key))
    return summary


def attack_scenarios(reports: list[Report]):
    """Scenarios of the reports: failed first, then those not passed otherwise, then passed."""
    rank = Case(
        When(status=ScenarioStatus.FAILED, then=Value(0)),
        When(status=ScenarioStatus.PASSED, then=Value(2)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        AttackScenario.objects.filter(report_id__in=[report.pk for report in reports])
        .defer("steps", "tags")
        .annotate(status_rank=rank)
        .order_by("status_rank", "feature", "line", "id")
    )


ATTACK_TREND_COUNTS = {"passed": "passed", "failed": "failed", "other": "other"}


def attack_trend(run: PipelineRun) -> list[TrendPoint]:
    return summary_trend(run, ReportKind.GAUNTLT, counts=ATTACK_TREND_COUNTS)


def report_scenarios(report: Report):
    return report.scenarios.order_by("id")


def report_load_stats(report: Report):
    return report.load_stats.order_by("is_total", "label")

