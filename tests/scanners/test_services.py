import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from deliveries.models import RunStatus
from environments import selectors as environment_selectors
from scanners import selectors, services
from scanners.models import AttackScenario, Finding, LoadTestStat, Report, ReportStatus
from tests.factories import DeploymentFactory, EnvironmentFactory, ProjectFactory, RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db


def receive(run, content: bytes, name="report.json", kind=""):
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name=name, kind=kind, queue=False)
    return report


def ingest(run, content: bytes, name="report.json", kind=""):
    return services.ingest_report(report_id=receive(run, content, name, kind).pk)


def test_it_stores_the_raw_file_at_once_and_queues_ingestion(django_capture_on_commit_callbacks):
    run = RunFactory()
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report, created = services.receive_report(run=run, file=io.BytesIO(content), original_name="app.json")
    assert created and len(callbacks) == 1
    report.refresh_from_db()
    # the test settings run django-q2 tasks inline, so the queued ingestion has happened
    assert report.status == ReportStatus.PARSED
    assert report.kind == "trivy"
    with default_storage.open(report.file.name, "rb") as stored:
        assert stored.read() == content
    assert report.size_bytes == len(content)


def test_the_same_file_for_the_same_run_is_one_report():
    run = RunFactory()
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    first = ingest(run, content)
    again = ingest(run, content)
    assert again.pk == first.pk
    assert Report.objects.count() == 1
    assert Finding.objects.count() == 1


def test_ingesting_again_changes_nothing():
    run = RunFactory()
    report = ingest(run, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]))
    services.ingest_report(report_id=report.pk)
    assert Finding.objects.filter(report=report).count() == 1


def test_a_report_left_parsing_by_a_dead_worker_is_parsed_on_retry():
    run = RunFactory()
    report = receive(run, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]))
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.PARSING)
    assert services.ingest_report(report_id=report.pk).status == ReportStatus.PARSED
    assert Finding.objects.filter(report=report).count() == 1


def test_it_summarises_findings_by_severity_and_class():
    run = RunFactory()
    report = ingest(
        run,
        samples.trivy_report([
            samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL"),
            samples.trivy_vulnerability("CVE-2024-0002", package="zlib", severity="HIGH"),
            samples.trivy_vulnerability("CVE-2024-0003", package="musl", severity="HIGH"),
        ]),
    )
    assert report.summary["findings"] == 3
    assert report.summary["by_severity"] == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 0}
    assert report.summary["by_class"] == {"vulnerability": 3, "misconfiguration": 0, "secret": 0, "license": 0}


def test_it_marks_findings_new_persisting_and_fixed_against_the_previous_run_of_the_branch():
    project = ProjectFactory()
    first = RunFactory(project=project, branch="dev", build_number=1)
    ingest(first, samples.trivy_report([
        samples.trivy_vulnerability("CVE-2024-0001"),
        samples.trivy_vulnerability("CVE-2024-0002", package="zlib"),
    ], image="registry.example.com/shop/app:one"))
    RunFactory(project=project, branch="feature/x", build_number=2)  # another branch is not compared
    second = RunFactory(project=project, branch="dev", build_number=3)
    report = ingest(second, samples.trivy_report([
        samples.trivy_vulnerability("CVE-2024-0001", title="A reworded title does not make it new"),
        samples.trivy_vulnerability("CVE-2024-0009", package="curl"),
    ], image="registry.example.com/shop/app:two"))
    by_id = {f.identifier: f for f in Finding.objects.filter(report=report)}
    assert by_id["CVE-2024-0001"].new_on_branch is False
    assert by_id["CVE-2024-0009"].new_on_branch is True
    assert (report.summary["new"], report.summary["persisting"], report.summary["fixed"]) == (1, 1, 1)
    assert report.summary["compared_with_run"] == first.pk


APP = "registry.example.com/shop/app"
NGINX = "registry.example.com/shop/nginx"


def scan(run, *cves, image=APP, **fields):
    """Ingest a Trivy report of `image` holding the CVEs (each in a package of its own unless given)."""
    vulnerabilities = [samples.trivy_vulnerability(cve, **{"package": cve, **fields}) for cve in cves]
    return ingest(run, samples.trivy_report(vulnerabilities, image=f"{image}:{run.build_number}"))


def counts(report):
    return report.summary["new"], report.summary["persisting"], report.summary["fixed"]


def test_a_package_bump_that_is_still_vulnerable_is_one_persisting_finding():
    project = ProjectFactory()
    first = RunFactory(project=project, build_number=1)
    scan(first, "CVE-2024-0001", package="openssl", installed="3.0.1")
    second = RunFactory(project=project, build_number=2)
    report = scan(second, "CVE-2024-0001", package="openssl", installed="3.0.2")
    assert counts(report) == (0, 1, 0)
    assert Finding.objects.get(report=report).new_on_branch is False


def test_the_previous_build_is_chosen_by_build_number_not_by_creation_time():
    project = ProjectFactory()
    now = timezone.now()
    # build 2 was recorded before build 1 (its callback came first), build 3 is the newest
    build_2 = RunFactory(project=project, build_number=2, created_at=now - timedelta(minutes=30))
    build_1 = RunFactory(project=project, build_number=1, created_at=now - timedelta(minutes=20))
    scan(build_1, "CVE-2024-0001")
    scan(build_2, "CVE-2024-0002")
    build_3 = RunFactory(project=project, build_number=3, created_at=now)
    report = scan(build_3, "CVE-2024-0002")
    assert report.summary["compared_with_run"] == build_2.pk
    assert counts(report) == (0, 1, 0)
    assert selectors.comparison_basis(build_2, APP) == build_1


def test_new_and_fixed_are_judged_against_the_same_image():
    project = ProjectFactory()
    first = RunFactory(project=project, build_number=1)
    scan(first, "CVE-2024-0001", image=APP)
    scan(first, "CVE-2024-0002", image=NGINX)
    second = RunFactory(project=project, build_number=2)
    # CVE-2024-0002 was in the nginx image before: in the app image it is new
    app = scan(second, "CVE-2024-0002", image=APP)
    nginx = scan(second, "CVE-2024-0002", image=NGINX)
    assert counts(app) == (1, 0, 1)
    assert counts(nginx) == (0, 1, 0)
    summary = selectors.security_summary(second, production_run=None)
    assert [f.identifier for f in selectors.fixed_findings(second, summary)] == ["CVE-2024-0001"] == [
        f.identifier for f in Finding.objects.filter(run=first, artifact_name=APP)]


def test_an_image_is_compared_with_the_latest_build_that_scanned_it():
    project = ProjectFactory()
    first = RunFactory(project=project, build_number=1)
    scan(first, "CVE-2024-0001", image=APP)
    second = RunFactory(project=project, build_number=2)
    scan(second, "CVE-2024-0009", image=NGINX)  # the app image was not scanned in build 2
    third = RunFactory(project=project, build_number=3)
    report = scan(third, "CVE-2024-0001", image=APP)
    assert report.summary["compared_with_run"] == first.pk
    assert counts(report) == (0, 1, 0)


def test_a_clean_scan_is_a_basis_too():
    project = ProjectFactory()
    scan(RunFactory(project=project, build_number=1), "CVE-2024-0001")
    clean = RunFactory(project=project, build_number=2)
    assert counts(scan(clean)) == (0, 0, 1)
    assert counts(scan(RunFactory(project=project, build_number=3), "CVE-2024-0001")) == (1, 0, 0)


def test_the_comparison_with_production_follows_what_production_runs():
    project = ProjectFactory()
    production = EnvironmentFactory(slug="production", tier="production")
    released = RunFactory(project=project, branch="master", build_number=1)
    scan(released, "CVE-2024-0001")
    DeploymentFactory(source_run=released, environment=production, finished_at=timezone.now() - timedelta(hours=1))
    candidate = RunFactory(project=project, branch="dev", build_number=2)
    report = scan(candidate, "CVE-2024-0001", "CVE-2024-0002")

    def flags():
        running = environment_selectors.production_run(project.pk)
        flagged = selectors.findings(report=report, production_run=running)
        summary = selectors.security_summary(candidate, production_run=running)
        return {f.identifier: f.new_vs_production for f in flagged}, summary.new_vs_production

    assert flags() == ({"CVE-2024-0001": False, "CVE-2024-0002": True}, 1)
    DeploymentFactory(source_run=candidate, environment=production)
    assert flags() == ({"CVE-2024-0001": False, "CVE-2024-0002": False}, 0)


def test_without_production_the_comparison_is_unknown_not_new():
    run = RunFactory()
    report = scan(run, "CVE-2024-0001")
    assert selectors.findings(report=report, production_run=None).get().new_vs_production is None
    assert selectors.security_summary(run, production_run=None).new_vs_production is None


def test_it_ingests_gauntlt_scenarios_with_the_failing_step():
    report = ingest(RunFactory(), samples.cucumber_report([
        ("XSS", "passed", ""),
        ("SQL injection", "failed", "expected output not to contain \"vulnerable\""),
    ]), name="gauntlt.json")
    assert report.kind == "gauntlt"
    assert report.summary == {"features": 1, "scenarios": 2, "passed": 1, "failed": 1, "other": 0}
    failed = AttackScenario.objects.get(report=report, status="failed")
    assert failed.name == "SQL injection"
    assert "should not contain" in failed.failing_step
    assert "vulnerable" in failed.failure_message


def test_it_ingests_jmeter_statistics():
    rows = [(1_700_000_000_000 + i * 100, 100 + i, "home" if i % 2 else "cart", i != 3) for i in range(10)]
    report = ingest(RunFactory(), samples.jtl_csv(rows), name="results.jtl")
    assert report.kind == "jmeter"
    assert (report.summary["samples"], report.summary["errors"]) == (10, 1)
    total = LoadTestStat.objects.get(report=report, is_total=True)
    assert total.samples == 10 and total.errors == 1
    assert total.mean_ms == pytest.approx(104.5)
    # throughput: 10 samples over (last start + its elapsed - first start) = (900 + 109) ms
    assert total.throughput == pytest.approx(10 / 1.009)
    assert set(report.summary["labels"]) == {"home", "cart"}
    assert report.load_buckets.exists()


def test_it_stores_transaction_rows_marked_and_a_total_without_them():
    # Each "checkout" transaction spans the home and cart requests before it, as JMeter writes them.
    rows = []
    for i in range(4):
        start = 1_700_000_000_000 + i * 1000
        rows += [(start, 100, "home", True), (start + 100, 200, "cart", i != 0), (start, 300, "checkout", i != 0)]
    report = ingest(RunFactory(), samples.jtl_csv_with_transactions(rows, ("checkout",)), name="results.jtl")

    stats = {stat.label: stat for stat in LoadTestStat.objects.filter(report=report)}
    assert [label for label, stat in stats.items() if stat.is_transaction] == ["checkout"]
    assert (stats["checkout"].samples, stats["checkout"].errors, stats["checkout"].mean_ms) == (4, 1, 300.0)
    total = LoadTestStat.objects.get(report=report, is_total=True)
    assert (total.samples, total.errors, total.max_ms, total.mean_ms) == (8, 1, 200.0, 150.0)
    assert total.throughput == pytest.approx(8 / 3.3)  # first start 0, last end 3000 + 100 + 200 ms
    summary = report.summary
    assert (summary["samples"], summary["errors"], summary["transaction_samples"]) == (8, 1, 4)
    assert summary["transactions"] == ["checkout"] and summary["total"]["p95"] == 200.0
    assert sum(report.load_buckets.values_list("samples", flat=True)) == 8


def test_it_ingests_an_xml_jtl_without_timing_and_stores_its_timing_as_not_available():
    content = samples.jtl_xml_without_timing([("home", True), ("home", False), ("cart", True)])
    report = ingest(RunFactory(), content, name="results.jtl")

    assert report.status == ReportStatus.PARSED, report.error
    assert (report.summary["samples"], report.summary["errors"]) == (3, 1)
    for stat in LoadTestStat.objects.filter(report=report):
        assert (stat.mean_ms, stat.p95_ms, stat.min_ms, stat.throughput, stat.received_kbps) == (None,) * 5
        assert "no elapsed time" in stat.timing_unavailable and "no start time" in stat.timing_unavailable
    assert not report.load_buckets.exists()
    assert "no elapsed time" in report.summary["timing_unavailable"]
    assert report.summary["total"]["p95"] is None
    assert report.summary["started_at"] is None


def test_a_failed_report_writes_nothing_and_leaves_other_reports_alone():
    run = RunFactory()
    good = ingest(run, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]))
    bad = ingest(run, b'{"SchemaVersion": 2, "Results": [', kind="trivy")
    assert bad.status == ReportStatus.FAILED
    assert "JSON" in bad.error
    assert Finding.objects.filter(report=bad).count() == 0
    good.refresh_from_db()
    assert good.status == ReportStatus.PARSED and Finding.objects.filter(report=good).count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS


def test_it_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown report kind"):
        services.receive_report(run=RunFactory(), file=io.BytesIO(b"x"), original_name="x", kind="sonar")


GITHUB_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
SECRET_REPORT = (
    '{"SchemaVersion": 2, "ArtifactName": "repo", "ArtifactType": "repository", "Results": [{"Target": '
    '"app/settings.py", "Class": "secret", "Secrets": [{"RuleID": "github-pat", "Category": "GitHub", '
    '"Severity": "CRITICAL", "Title": "GitHub Personal Access Token", "StartLine": 3, "EndLine": 3, '
    '"Code": {"Lines": [{"Number": 3, "Content": "TOKEN = \'' + GITHUB_TOKEN + '\'", "IsCause": true}]}, '
    '"Match": "TOKEN = \'' + GITHUB_TOKEN + '\'"}]}]}'
).encode()


def test_a_secret_is_stored_nowhere_unmasked(client, users):
    from django.urls import reverse

    report = ingest(RunFactory(), SECRET_REPORT, kind="trivy")
    finding = Finding.objects.get(report=report)
    assert finding.finding_class == "secret" and finding.identifier == "github-pat"
    assert finding.detail == "***** * " + "*" * len(f"'{GITHUB_TOKEN}'")  # Trivy did not mask it: starred whole
    stored_row = " ".join(str(value) for value in Finding.objects.filter(report=report).values().get().values())
    assert GITHUB_TOKEN not in stored_row
    with report.file.open("rb") as raw:
        assert GITHUB_TOKEN.encode() not in raw.read()
    assert report.sha256 != "" and Report.objects.get(pk=report.pk).status == ReportStatus.PARSED
    client.force_login(users.developer)
    assert GITHUB_TOKEN not in client.get(reverse("report-detail", args=[report.pk])).content.decode()
