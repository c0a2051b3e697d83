"""The data migration that takes the installed version out of stored vulnerability fingerprints."""

import importlib
import io
import json

import pytest
from django.apps import apps

from scanners import services
from scanners.models import Finding
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("scanners.migrations.0004_finding_fingerprint_without_version")

DJANGO_PATH = "usr/local/lib/python3.12/site-packages/Django-4.2.1.dist-info/METADATA"
REPORT = {
    "SchemaVersion": 2,
    "ArtifactName": "registry.example.com/shop/app:abc",
    "ArtifactType": "container_image",
    "Results": [
        {"Target": "registry.example.com/shop/app:abc (alpine 3.19.1)", "Class": "os-pkgs", "Type": "alpine",
         "Vulnerabilities": [{"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "InstalledVersion": "3.1.4"}]},
        {"Target": "requirements.txt", "Class": "lang-pkgs", "Type": "pip",
         "Vulnerabilities": [{"VulnerabilityID": "CVE-2024-0002", "PkgName": "Werkzeug", "InstalledVersion": "0.11"}]},
        {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg",
         "Vulnerabilities": [{"VulnerabilityID": "CVE-2024-0003", "PkgName": "Django", "InstalledVersion": "4.2.1",
                              "PkgPath": DJANGO_PATH}]},
    ],
}
LOCATIONS = {"CVE-2024-0001": "", "CVE-2024-0002": "requirements.txt", "CVE-2024-0003": DJANGO_PATH}


def test_it_rewrites_stored_fingerprints_as_the_parser_now_makes_them_and_back():
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(json.dumps(REPORT).encode()),
                                        original_name="app.json", queue=False)
    services.ingest_report(report_id=report.pk)
    current = dict(Finding.objects.values_list("identifier", "fingerprint"))
    assert len(current) == 3
    before = {}
    for finding in Finding.objects.all():  # as the version before this change stored them
        finding.fingerprint = before[finding.identifier] = migration.with_version(
            finding, LOCATIONS[finding.identifier])
        finding.save(update_fields=["fingerprint"])

    migration.forwards(apps, None)
    assert dict(Finding.objects.values_list("identifier", "fingerprint")) == current
    migration.backwards(apps, None)
    assert dict(Finding.objects.values_list("identifier", "fingerprint")) == before


no_secret_at_rest = importlib.import_module("scanners.migrations.0006_no_secret_at_rest_in_kept_raw_files")
TOKEN = "ghp_" + "Z9y8X7w6V5" * 3 + "u4T3s2"


def kept_before_whole_match_masking(content: bytes, status: str):
    """A report as the portal before this change left it: its raw file with a token in clear."""
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content), original_name="old.jtl",
                                        kind="jmeter", queue=False)
    report.status = status
    report.save(update_fields=["status"])
    return report


def test_it_masks_the_raw_files_kept_before_and_drops_those_of_failed_reports():
    from scanners.models import Report

    content = f"timeStamp,elapsed,label\n1700000000000,5,GET /?token={TOKEN}\n".encode()
    parsed = kept_before_whole_match_masking(content, "parsed")
    failed = kept_before_whole_match_masking(content + b"broken", "failed")
    failed_name = failed.file.name
    parsing = kept_before_whole_match_masking(content + b"later", "parsing")

    no_secret_at_rest.forwards(apps, None)
    parsed, failed, parsing = (Report.objects.get(pk=report.pk) for report in (parsed, failed, parsing))
    with parsed.file.open("rb") as stored:
        assert stored.read() == content.replace(TOKEN.encode(), b"*" * len(TOKEN))
    assert not failed.file and not failed.file.storage.exists(failed_name)
    with parsing.file.open("rb") as stored:
        assert TOKEN.encode() in stored.read()  # masked, or dropped, when its parse ends


def test_it_stars_whole_the_matches_that_secret_findings_showed_before():
    report = services.ingest_report(report_id=services.receive_report(
        run=RunFactory(), file=io.BytesIO(json.dumps({"SchemaVersion": 2, "Results": [{"Target": ".env", "Secrets": [
            {"RuleID": "generic", "Match": "KEY=****"}]}]}).encode()), original_name="s.json", queue=False)[0].pk)
    Finding.objects.filter(report=report).update(detail="s3cr3t-b3f0re: ****")  # as the old masking kept it

    no_secret_at_rest.forwards(apps, None)
    assert Finding.objects.get(report=report).detail == "*" * len("s3cr3t-b3f0re:") + " ****"
