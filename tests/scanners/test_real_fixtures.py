"""Every real-world report in ../shared/fixtures ingests, with its kind detected, to the counts checked by hand
(jq and a separate Python csv/ElementTree count, not the portal's parsers)."""

import pytest

from scanners import services
from scanners.models import ReportStatus
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

TRIVY = {
    # file: (findings, {class: count}, {severity: count})
    "alpine-310.json": (4, {"vulnerability": 4}, {"MEDIUM": 4}),
    "alpine-310.legacy-pre-0.20.json": (8, {"vulnerability": 8}, {"MEDIUM": 6, "LOW": 2}),
    "clean-results-without-findings.json": (0, {}, {}),
    "dockerfile-misconfig.json": (1, {"misconfiguration": 1}, {"HIGH": 1}),
    "empty-no-results.json": (0, {}, {}),
    "licenses.json": (3, {"license": 3}, {"MEDIUM": 1, "LOW": 2}),
    "npm.json": (1, {"vulnerability": 1}, {"MEDIUM": 1}),
    "pip.json": (2, {"vulnerability": 2}, {"HIGH": 1, "MEDIUM": 1}),
    "secrets.json": (2, {"secret": 2}, {"CRITICAL": 1, "HIGH": 1}),
}
GAUNTLT = {
    # file: (scenarios, passed, failed, other)
    "cucumber-1.3.20-pass-fail.json": (2, 1, 1, 0),
    "cucumber-1.3.20-docstring-failed.json": (1, 0, 1, 0),
    "cucumber-1.3.20-outline-expanded.json": (3, 2, 1, 0),
    "cucumber-ruby-modern-pass-fail.json": (2, 1, 1, 0),
}
JMETER = {
    # file: (samples in the Total, its failed samples, labels, Transaction Controller labels left out of the Total)
    "csv-failures-nonhttp.jtl": (6, 5, 8, 2),
    "csv-formatted-timestamp.csv": (3, 1, 2, 0),
    "csv-no-header.jtl": (3, 0, 3, 0),
    "jmeter-dashboard-default-17cols.csv": (255, 3, 2, 0),
    "xml-embedded-resources-subsamples.jtl": (1, 1, 1, 0),
    "xml-sample-jmeter3-attrs.jtl": (2, 1, 1, 0),
    "xml-transaction-parent-nested-2-levels.jtl": (1, 1, 3, 2),
}


def ingest_fixture(path):
    with open(path, "rb") as handle:
        report, _ = services.receive_report(run=RunFactory(), file=handle, original_name=path.name, queue=False)
    return services.ingest_report(report_id=report.pk)


@pytest.mark.parametrize("name", sorted(TRIVY))
def test_trivy_fixture(shared_fixture, name):
    findings, by_class, by_severity = TRIVY[name]
    report = ingest_fixture(shared_fixture(f"trivy/{name}"))
    assert (report.status, report.kind) == (ReportStatus.PARSED, "trivy"), report.error
    assert report.summary["findings"] == findings == report.findings.count()
    assert {k: v for k, v in report.summary["by_class"].items() if v} == by_class
    assert {k: v for k, v in report.summary["by_severity"].items() if v} == by_severity


@pytest.mark.parametrize("name", sorted(GAUNTLT))
def test_gauntlt_fixture(shared_fixture, name):
    scenarios, passed, failed, other = GAUNTLT[name]
    report = ingest_fixture(shared_fixture(f"gauntlt/{name}"))
    assert (report.status, report.kind) == (ReportStatus.PARSED, "gauntlt"), report.error
    summary = report.summary
    assert (summary["scenarios"], summary["passed"], summary["failed"], summary["other"]) == GAUNTLT[name]
    assert report.scenarios.count() == scenarios
    assert report.scenarios.filter(status="passed").count() == passed
    assert report.scenarios.filter(status="failed").count() == failed
    assert other == scenarios - passed - failed


@pytest.mark.parametrize("name", sorted(JMETER))
def test_jmeter_fixture(shared_fixture, name):
    samples, errors, labels, transactions = JMETER[name]
    report = ingest_fixture(shared_fixture(f"jmeter/{name}"))
    assert (report.status, report.kind) == (ReportStatus.PARSED, "jmeter"), report.error
    summary = report.summary
    assert (summary["samples"], summary["errors"], len(summary["labels"]), len(summary["transactions"])) == (
        JMETER[name]
    )
    total = report.load_stats.get(is_total=True)
    assert (total.samples, total.errors) == (samples, errors)
    assert report.load_stats.filter(is_total=False).count() == labels
    assert report.load_stats.filter(is_transaction=True).count() == transactions


def test_secrets_are_masked_before_they_are_stored(shared_fixture):
    import json

    path = shared_fixture("trivy/secrets.json")
    raw = json.loads(path.read_text())
    secrets = [s["Match"] for r in raw["Results"] for s in r.get("Secrets", [])]
    report = ingest_fixture(path)
    stored = " ".join(f"{f.title} {f.detail} {f.identifier}" for f in report.findings.all())
    for match in secrets:
        value = match.split("=", 1)[-1].strip().strip("*")
        if value:
            assert value not in stored


def test_the_dashboards_show_every_real_fixture(shared_fixture, client, users):
    """All the real files ingested into one run: its security, performance and attack pages show them."""
    from django.urls import reverse

    run = RunFactory()
    for folder, names in (("trivy", TRIVY), ("gauntlt", GAUNTLT), ("jmeter", JMETER)):
        for name in names:
            with open(shared_fixture(f"{folder}/{name}"), "rb") as handle:
                report, _ = services.receive_report(run=run, file=handle, original_name=name, queue=False)
            assert services.ingest_report(report_id=report.pk).status == ReportStatus.PARSED, name
    client.force_login(users.developer)
    args = [run.project.slug, run.pk]
    security = client.get(reverse("run-security", args=args))
    assert security.status_code == 200
    assert security.context["summary"].findings == sum(findings for findings, _, _ in TRIVY.values())
    body = security.content.decode()
    assert "CVE-2019-14806" in body and "DS-0002" in body and "aws-access-key-id" in body
    performance = client.get(reverse("run-performance", args=args)).content.decode()
    assert "JR-OK" in performance and "<svg" in performance
    attacks = client.get(reverse("run-attacks", args=args)).content.decode()
    assert "Given a failing step" in attacks
