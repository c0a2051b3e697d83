"""A report never stays "parsing": whatever fails after the parse fails the report with the reason, and the NUL
characters a hostile or broken file holds (which PostgreSQL refuses) are stripped by every parser alike."""

import io
import json

import pytest
from django.db import DataError

from scanners import services
from scanners.models import AttackScenario, Finding, LoadTestStat, Report, ReportStatus
from scanners.parsers.common import ReportParseError, without_nul
from tests.factories import RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

NUL = "\x00"


def ingest(content: bytes, kind: str = "", name: str = "report.json") -> Report:
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content), original_name=name, kind=kind,
                                        queue=False)
    return services.ingest_report(report_id=report.pk)


def test_without_nul_removes_every_nul_and_leaves_other_text_alone():
    assert without_nul(f"{NUL}app{NUL}{NUL}:1{NUL}") == "app:1"
    assert without_nul("tab\tand é") == "tab\tand é"


def test_a_parse_error_never_quotes_a_nul():
    error = ReportParseError(f"unknown key a{NUL}b", f"Results[0].a{NUL}b")
    assert NUL not in str(error) and str(error) == "Results[0].ab: unknown key ab"


def test_rows_the_database_refuses_fail_the_report_with_the_reason(monkeypatch):
    def refused(report, parsed):
        raise DataError("value too long for type character varying(255)\nDETAIL: more")

    monkeypatch.setitem(services.WRITERS, "trivy", refused)
    report = ingest(samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]))
    report.refresh_from_db()
    assert report.status == ReportStatus.FAILED
    assert report.error == ("what was parsed could not be stored (DataError: value too long for type character "
                            "varying(255)); the file is kept")
    assert not Finding.objects.filter(report=report).exists()
    assert report.file  # the raw file is kept


def test_a_masking_that_fails_fails_the_report_with_the_reason(monkeypatch):
    def broken(data):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(services, "redact_secrets", broken)
    secret = {"RuleID": "github-pat", "Severity": "CRITICAL", "Title": "GitHub PAT", "Match": "token=ghp_abc"}
    content = json.dumps({"SchemaVersion": 2, "ArtifactName": "app", "Results": [
        {"Target": "app/.env", "Class": "secret", "Secrets": [secret]}]}).encode()
    report = ingest(content)
    report.refresh_from_db()
    assert report.status == ReportStatus.FAILED
    assert "could not be masked (RecursionError: maximum recursion depth exceeded)" in report.error
    assert not Finding.objects.filter(report=report).exists()


def trivy_with_nul_names() -> bytes:
    return json.dumps({
        "SchemaVersion": 2, "ArtifactName": f"registry.example.com/shop/app{NUL}:1.0",
        "ArtifactType": "container_image",
        "Results": [{"Target": f"app{NUL}", "Class": "lang-pkgs", "Type": "pip", "Vulnerabilities": [
            samples.trivy_vulnerability(f"CVE-2024-{NUL}0001", package=f"django{NUL}")]},
            {"Target": "app/.env", "Class": "secret", "Secrets": [
                {"RuleID": "aws-key", "Severity": "HIGH", "Title": "AWS", "Match": f"KEY{NUL}=AKIAabcdefgh"}]}],
    }).encode()


def trivy_cluster_with_nul_name() -> bytes:
    return json.dumps({"ClusterName": f"prod{NUL}-cluster", "Resources": [{
        "Namespace": "shop", "Kind": "Deployment", "Name": f"web{NUL}", "Results": [
            {"Target": "nginx:1.25", "Class": "os-pkgs", "Type": "debian",
             "Vulnerabilities": [samples.trivy_vulnerability("CVE-2024-0002")]}]}]}).encode()


def sarif_with_nul_image() -> bytes:
    return json.dumps({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "Trivy", "rules": [{"id": f"CVE-2024-{NUL}0003", "name": "OsPackageVulnerability",
                                                         "shortDescription": {"text": f"bad{NUL}"}}]}},
        "properties": {"imageName": f"registry.example.com/shop/app{NUL}:1.0"},
        "results": [{"ruleIndex": 0, "level": "error",
                     "message": {"text": f"Package: openssl{NUL}\nInstalled Version: 1.1.1\nFixed Version: 1.1.2"},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"app{NUL}/lib"}}}]}]}],
    }).encode()


def cucumber_with_nul_everywhere() -> bytes:
    return json.dumps([{
        "uri": f"attack{NUL}.attack", "keyword": "Feature", "name": f"Attack{NUL}", "tags": [{"name": f"@x{NUL}"}],
        "elements": [{"id": "a;b", "keyword": "Scenario", "name": f"nmap{NUL}", "line": 3, "type": "scenario",
                      "tags": [f"@y{NUL}"], "steps": [{"keyword": "Then ", "name": f"it fails{NUL}", "line": 4,
                      "result": {"status": "failed", "error_message": f"expected{NUL} 0"}}],
                      "after": [{"match": {"location": f"env{NUL}.rb:3"}, "result": {"status": "passed"}}]}],
    }]).encode()


def jmeter_with_nul_label() -> bytes:
    # A raw NUL byte in the first MiB is taken for a binary file; further on, it is a label's character.
    first_mib = [(1700000000000 + index, 100, "home", True) for index in range(JMETER_ROWS_BEFORE_NUL)]
    return samples.jtl_csv([*first_mib, (1700000001000, 120, f"home{NUL}", True),
                            (1700000002000, 90, f"cart{NUL}", False)])


JMETER_ROWS_BEFORE_NUL = 13_000


def stored_text(report: Report) -> str:
    """Everything the database holds for the report, as text."""
    rows = [*Finding.objects.filter(report=report).values(), *AttackScenario.objects.filter(report=report).values(),
            *LoadTestStat.objects.filter(report=report).values()]
    return repr(rows) + json.dumps(report.summary) + report.error


@pytest.mark.parametrize(
    ("content", "kind", "expected"),
    [
        (trivy_with_nul_names(), "trivy", {"artifact_name": "registry.example.com/shop/app", "findings": 2}),
        (trivy_cluster_with_nul_name(), "trivy", {"artifact_name": "prod-cluster", "findings": 1}),
        (sarif_with_nul_image(), "trivy", {"artifact_name": "registry.example.com/shop/app", "findings": 1}),
        (cucumber_with_nul_everywhere(), "gauntlt", {"scenarios": 1, "failed": 1}),
        (jmeter_with_nul_label(), "jmeter", {"samples": JMETER_ROWS_BEFORE_NUL + 2}),
    ],
    ids=["trivy", "trivy-k8s", "sarif", "gauntlt", "jmeter"],
)
def test_nul_characters_are_stripped_by_every_parser_and_the_report_is_parsed(content, kind, expected):
    report = ingest(content, kind=kind)
    report.refresh_from_db()
    assert (report.status, report.error) == (ReportStatus.PARSED, "")
    assert {key: report.summary[key] for key in expected} == expected
    stored = stored_text(report)
    assert NUL not in stored and "\\x00" not in stored and "\\u0000" not in stored


def test_jmeter_labels_that_differ_only_by_nul_are_one_label():
    report = ingest(jmeter_with_nul_label(), kind="jmeter")
    stats = dict(LoadTestStat.objects.filter(report=report, is_total=False).values_list("label", "samples"))
    assert stats == {"home": JMETER_ROWS_BEFORE_NUL + 1, "cart": 1}


def test_a_gauntlt_scenario_keeps_its_names_and_message_without_nul():
    report = ingest(cucumber_with_nul_everywhere(), kind="gauntlt")
    scenario = AttackScenario.objects.get(report=report)
    assert (scenario.feature, scenario.name, scenario.failing_step, scenario.failure_message) == (
        "Attack", "nmap", "Then it fails", "expected 0")
    assert scenario.tags == ["@x", "@y"]


def test_an_error_that_quotes_a_nul_key_is_stored_without_it():
    report = ingest(json.dumps({f"odd{NUL}key": 1}).encode(), kind="trivy")
    report.refresh_from_db()
    assert report.status == ReportStatus.FAILED
    assert "top-level keys: oddkey" in report.error
