"""Demo reports (scanners.demo): report files ingested like uploads, filling the dashboards."""

from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from deliveries.models import PipelineRun, Project, Stage, StageStatus
from scanners import selectors
from scanners.demo import GAUNTLT_STAGE, JMETER_STAGE, TRIVY_STAGE, seed_reports
from scanners.models import AttackScenario, Finding, LoadTestBucket, LoadTestStat, Report, Severity
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def seed_all(scale: str = "normal"):
    """The demo history, then its reports (a no-op for runs seed_demo already gave reports to)."""
    call_command("seed_demo")
    for project in Project.objects.all():
        seed_reports(project=project, runs=list(project.runs.all()), scale=scale)


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seeded once for the module, inside a transaction rolled back at its end; each test runs in a savepoint."""
    with django_db_blocker.unblock(), transaction.atomic():
        seed_all()
        yield
        transaction.set_rollback(True)


def stage_runs(name: str, statuses) -> set[int]:
    return set(Stage.objects.filter(name=name, status__in=statuses).values_list("run_id", flat=True))


def test_it_gives_reports_to_the_runs_whose_stages_ran(db, seeded):
    scanned = stage_runs(TRIVY_STAGE, [StageStatus.SUCCESS])
    attacked = stage_runs(GAUNTLT_STAGE, [StageStatus.SUCCESS, StageStatus.UNSTABLE, StageStatus.FAILED])
    loaded = stage_runs(JMETER_STAGE, [StageStatus.SUCCESS, StageStatus.UNSTABLE, StageStatus.FAILED])
    per_run = Counter(Report.objects.filter(kind="trivy").values_list("run_id", flat=True))
    assert set(per_run) == scanned and set(per_run.values()) == {2}
    assert set(Report.objects.filter(kind="gauntlt").values_list("run_id", flat=True)) == attacked
    assert set(Report.objects.filter(kind="jmeter").values_list("run_id", flat=True)) == loaded
    assert not Report.objects.exclude(status="parsed").exists()
    assert not Report.objects.filter(file="").exists()  # the raw files are kept, as for any upload

    per_report = Report.objects.filter(kind="trivy").annotate(n=Count("findings")).values_list("n", flat=True)
    assert 25 <= min(per_report) and max(per_report) <= 120  # about 30 to 120 per image
    assert set(Report.objects.filter(kind="gauntlt").annotate(n=Count("scenarios")).values_list("n", flat=True)) == {9}
    assert set(Report.objects.filter(kind="jmeter").annotate(n=Count("load_stats")).values_list("n", flat=True)) == {6}
    buckets = set(Report.objects.filter(kind="jmeter").annotate(n=Count("load_buckets")).values_list("n", flat=True))
    assert buckets <= set(range(70, 75))  # six minutes in five-second slices
    assert LoadTestStat.objects.filter(is_total=True).count() == len(loaded)
    classes = set(Finding.objects.values_list("finding_class", flat=True).distinct())
    assert classes == {"vulnerability", "misconfiguration", "secret", "license"}


def test_secrets_are_masked(db, seeded):
    for detail in Finding.objects.filter(finding_class="secret").values_list("detail", flat=True):
        value = detail.split("=", 1)[-1].split(":", 1)[-1].strip()
        assert value and set(value) <= {"*", " ", "/"}, detail


def test_trivy_summaries_match_the_findings_rows(db, seeded):
    counts = defaultdict(lambda: defaultdict(Counter))
    rows = Finding.objects.values_list("report_id", "severity", "finding_class", "new_on_branch")
    for report_id, severity, finding_class, new in rows:
        counts[report_id]["severity"][severity] += 1
        counts[report_id]["class"][finding_class] += 1
        counts[report_id]["new"][new] += 1
    reports = list(Report.objects.filter(kind="trivy"))
    assert reports
    for report in reports:
        summary, mine = report.summary, counts[report.pk]
        assert set(summary) == {"format", "artifact_name", "findings", "by_severity", "by_class", "new", "persisting",
                                "fixed", "compared_with_run"}
        assert summary["findings"] == sum(mine["severity"].values())
        assert summary["by_severity"] == {value: mine["severity"][value] for value in Severity.values}
        assert summary["by_class"] == {key: mine["class"][key] for key in summary["by_class"]}
        assert (summary["new"], summary["persisting"]) == (mine["new"][True], mine["new"][False])


def test_flags_follow_the_one_comparison_basis(db, seeded):
    checked_fixed = 0
    for report in Report.objects.filter(kind="trivy").select_related("run"):
        summary = report.summary
        basis = selectors.comparison_basis(report.run, summary["artifact_name"])
        assert summary["compared_with_run"] == (basis.pk if basis else None)
        mine = dict(Finding.objects.filter(report=report).values_list("fingerprint", "new_on_branch"))
        before = selectors.fingerprints_of(basis, artifact_name=summary["artifact_name"]) if basis else set()
        assert mine == {fingerprint: fingerprint not in before for fingerprint in mine}
        assert summary["fixed"] == len(before - set(mine))
        checked_fixed += summary["fixed"] > 0
    assert checked_fixed > 50


def test_a_bumped_package_that_is_still_vulnerable_persists(db, seeded):
    bumped = 0
    for finding in Finding.objects.filter(finding_class="vulnerability", new_on_branch=False, target="Python")[:400]:
        basis = Report.objects.get(pk=finding.report_id).summary["compared_with_run"]
        before = Finding.objects.get(run_id=basis, artifact_name=finding.artifact_name,
                                     fingerprint=finding.fingerprint)
        bumped += before.installed_version != finding.installed_version
    assert bumped > 0


def test_findings_evolve_along_the_branch(db, seeded):
    news = [r.summary["new"] for r in Report.objects.filter(kind="trivy") if r.summary["compared_with_run"]]
    fixed = [r.summary["fixed"] for r in Report.objects.filter(kind="trivy") if r.summary["compared_with_run"]]
    assert 0 < sum(news) / len(news) < 10 and 0 < sum(fixed) / len(fixed) < 10
    assert max(news) > 0 and max(fixed) > 0


def test_attacks_fail_when_the_stage_did_not_pass(db, seeded):
    for report in Report.objects.filter(kind="gauntlt").select_related("run"):
        status = Stage.objects.get(run=report.run, name=GAUNTLT_STAGE).status
        failed = AttackScenario.objects.filter(report=report, status="failed").count()
        assert report.summary["failed"] == failed
        assert report.summary["scenarios"] == 9
        if status == StageStatus.SUCCESS:
            assert failed == 0
        elif status == StageStatus.UNSTABLE:
            assert failed == 2
        else:
            assert failed >= 1
    assert AttackScenario.objects.filter(status="failed").exclude(failing_step="").exists()


def test_load_tests_add_up(db, seeded):
    report = Report.objects.filter(kind="jmeter").first()
    labels = LoadTestStat.objects.filter(report=report, is_total=False)
    total = LoadTestStat.objects.get(report=report, is_total=True)
    assert labels.count() == 5
    assert total.samples == sum(stat.samples for stat in labels) == report.summary["samples"]
    assert sum(LoadTestBucket.objects.filter(report=report).values_list("samples", flat=True)) == total.samples
    assert set(report.summary["labels"]) == set(labels.values_list("label", flat=True))
    p95s = set(LoadTestStat.objects.filter(label="GET /").values_list("p95_ms", flat=True))
    assert len(p95s) > 10  # numbers vary by run


def test_it_is_idempotent_and_deterministic(db, seeded):
    def snapshot():
        return {
            (r.run.project.slug, r.run.build_number, r.original_name): (
                r.summary, sorted(Finding.objects.filter(report=r).values_list("fingerprint", "new_on_branch")))
            for r in Report.objects.select_related("run__project")
        }

    first = snapshot()
    count = Finding.objects.count()
    for project in Project.objects.all():
        assert seed_reports(project=project, runs=list(project.runs.all())).reports == 0
    assert Finding.objects.count() == count
    Report.objects.all().delete()
    for project in Project.objects.all():
        seed_reports(project=project, runs=list(project.runs.all()))
    assert snapshot() == first


def test_the_dashboards_show_demo_data(db, client, users, seeded):
    client.force_login(users.developer)
    project = Project.objects.get(slug="storefront")
    response = client.get(reverse("project-security", args=[project.slug]))
    run, summary = response.context["run"], response.context["summary"]
    assert summary.findings > 60 and summary.compared_with_run is not None
    assert response.context["page"].paginator.count == summary.findings
    assert response.context["fixed_page"].paginator.count == summary.fixed
    assert str(response.context["trend_chart"]).count('class="bar"') > 30
    assert client.get(reverse("project-attacks", args=[project.slug])).status_code == 200
    performance = client.get(reverse("project-performance", args=[project.slug]))
    assert len(performance.context["rows"]) == 6
    assert 'class="series"' in str(performance.context["trend_chart"])
    report = Report.objects.filter(run=run, kind="trivy").first()
    body = client.get(reverse("report-detail", args=[report.pk])).content.decode()
    assert reverse("report-download", args=[report.pk]) in body  # stored like an upload, and downloadable


def test_the_fixed_list_matches_the_summary_on_every_run(db, seeded):
    for run in PipelineRun.objects.filter(reports__kind="trivy").distinct()[:80]:
        summary = selectors.security_summary(run, production_run=None)
        assert selectors.fixed_findings(run, summary).count() == summary.fixed, run


def test_the_large_scale_has_about_25_findings_per_image():
    project = ProjectFactory(slug="big", gitlab_project_path="shop/big")
    start = timezone.now() - timedelta(days=30)
    runs = PipelineRun.objects.bulk_create(
        PipelineRun(project=project, branch="dev", build_number=number, commit_sha=f"{number:040x}",
                    status="success", created_at=start + timedelta(minutes=number))
        for number in range(1, 121)
    )
    Stage.objects.bulk_create(
        Stage(run=run, name=TRIVY_STAGE, order=5, status=StageStatus.SUCCESS,
              started_at=run.created_at, finished_at=run.created_at + timedelta(minutes=1))
        for run in runs
    )
    result = seed_reports(project=project, runs=runs, scale="large")
    assert result.reports == 240
    assert 20 <= result.findings / 240 <= 34
