import json

import pytest
from django.core.management import CommandError, call_command

from deliveries.models import PipelineRun
from scanners.models import Report
from tests.factories import ProjectFactory, RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(tmp_path):
    trivy = tmp_path / "app.json"
    trivy.write_bytes(samples.trivy_report([
        samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL"),
        samples.trivy_vulnerability("CVE-2024-0002", package="zlib", severity="LOW"),
    ]))
    jtl = tmp_path / "load.jtl"
    jtl.write_bytes(samples.jtl_csv([(1_700_000_000_000 + i * 10, 50 + i, "home", i != 0) for i in range(4)]))
    gauntlt = tmp_path / "attacks.json"
    gauntlt.write_bytes(samples.cucumber_report([("XSS", "passed", ""), ("nmap", "failed", "port 23 open")]))
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"SchemaVersion": 2, "Results": [')
    return {"trivy": trivy, "jmeter": jtl, "gauntlt": gauntlt, "broken": broken}


def run_command(*args) -> list[dict]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("ingest_report", *args, stdout=out)
    finally:
        run_command.output = out.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def test_it_creates_the_run_and_prints_one_json_object_per_file(files):
    ProjectFactory(slug="shop")
    lines = run_command("--project", "shop", "--build", "7", "--json",
                        str(files["trivy"]), str(files["jmeter"]), str(files["gauntlt"]))
    run = PipelineRun.objects.get(project__slug="shop", build_number=7)
    assert run.reports.count() == 3
    trivy, jmeter, gauntlt = lines
    assert trivy["kind"] == "trivy" and trivy["status"] == "parsed" and trivy["error"] is None
    assert trivy["findings"] == 2
    assert trivy["by_severity"]["CRITICAL"] == 1 and trivy["by_severity"]["LOW"] == 1
    assert trivy["by_class"] == {"vulnerability": 2, "misconfiguration": 0, "secret": 0, "license": 0}
    assert (jmeter["samples"], jmeter["errors"]) == (4, 1)
    assert set(jmeter["labels"]["home"]) == {"samples", "errors", "mean", "p50", "p90", "p95", "p99", "throughput"}
    assert jmeter["total"]["samples"] == 4
    assert (gauntlt["scenarios"], gauntlt["passed"], gauntlt["failed"], gauntlt["other"]) == (2, 1, 1, 0)


def test_it_exits_non_zero_and_prints_the_error_when_a_file_fails(files):
    run = RunFactory(project=ProjectFactory(slug="shop"), build_number=3)
    with pytest.raises(CommandError, match="1 of 2 file"):
        run_command("--project", "shop", "--build", "3", "--kind", "trivy", "--json",
                    str(files["trivy"]), str(files["broken"]))
    ok, failed = [json.loads(line) for line in run_command.output.splitlines()]
    assert ok["status"] == "parsed"
    assert failed["status"] == "failed" and "not valid JSON" in failed["error"]
    assert run.reports.count() == 2


def test_it_prints_a_readable_line_without_json(files):
    ProjectFactory(slug="shop")
    run_command("--project", "shop", "--build", "1", str(files["trivy"]))
    assert "trivy parsed, 2 findings (CRITICAL 1, LOW 1)" in run_command.output


def test_it_refuses_an_unknown_project(files):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        run_command("--project", "nope", "--build", "1", str(files["trivy"]))
    assert Report.objects.count() == 0


def test_it_reports_a_missing_file(tmp_path):
    ProjectFactory(slug="shop")
    with pytest.raises(CommandError):
        run_command("--project", "shop", "--build", "1", "--json", str(tmp_path / "missing.json"))
    assert "cannot open the file" in run_command.output


def test_the_run_it_creates_for_an_imported_build_is_finished_with_no_abort_button(client, files):
    from django.urls import reverse

    from deliveries.models import RunStatus
    from tests.factories import UserFactory

    ProjectFactory(slug="shop")
    run_command("--project", "shop", "--build", "7", "--json", str(files["trivy"]))
    run = PipelineRun.objects.get(project__slug="shop", build_number=7)
    assert run.status == RunStatus.SUCCESS and run.finished_at is not None
    client.force_login(UserFactory(roles=["developer"]))
    page = client.get(run.get_absolute_url()).content.decode()
    assert reverse("run-abort", args=["shop", run.pk]) not in page and 'data-finished="true"' in page


@pytest.mark.parametrize(("status", "finished"), [("failed", True), ("unstable", True), ("running", False)])
def test_status_sets_the_status_of_the_run_it_creates(files, status, finished):
    ProjectFactory(slug="shop")
    run_command("--project", "shop", "--build", "8", "--status", status, "--json", str(files["gauntlt"]))
    run = PipelineRun.objects.get(project__slug="shop", build_number=8)
    assert run.status == status and (run.finished_at is not None) == finished


def test_status_leaves_an_existing_run_as_it_is(files):
    from deliveries.models import RunStatus

    run = RunFactory(project=ProjectFactory(slug="shop"), build_number=3, status=RunStatus.RUNNING, finished_at=None)
    run_command("--project", "shop", "--build", "3", "--status", "failed", "--json", str(files["gauntlt"]))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.reports.count() == 1


@pytest.mark.parametrize("status", ["trigger_failed", "queued", "done"])
def test_it_refuses_a_status_an_imported_build_cannot_have(files, status):
    ProjectFactory(slug="shop")
    with pytest.raises(CommandError, match="--status"):
        run_command("--project", "shop", "--build", "9", "--status", status, str(files["trivy"]))
    assert not PipelineRun.objects.exists()


def test_it_prints_not_available_for_a_load_test_saved_without_timing(tmp_path):
    ProjectFactory(slug="shop")
    untimed = tmp_path / "untimed.jtl"
    untimed.write_bytes(samples.jtl_xml_without_timing([("home", True), ("home", False)]))
    run_command("--project", "shop", "--build", "1", str(untimed))
    assert "jmeter parsed, 2 samples, 1 errors, 1 labels; p95 n/a, n/a" in run_command.output
