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
