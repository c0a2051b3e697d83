"""Recompute the stored fingerprints of vulnerabilities without the installed version (scanners.parsers.trivy
`vulnerability_fingerprint`), so that the scans made before and after this change compare as one history.

A stored row does not keep where its package was found (PkgPath). Most rows do not need it: OS packages are
located by "" and the others mostly by their result's target, which the row keeps, so the old fingerprint is
matched against those two candidates and rewritten in batches. Only the rest (packages found by PkgPath) need
the raw report, which is read once per report that has such rows; a report whose file is gone keeps its old
fingerprints (its findings then show once as fixed and new again). Reversible in the same way.
The formulas are written out here, as they were and are, so later changes to the parser do not change this.
"""

import hashlib
import re

from django.db import migrations

BATCH = 2000
VULNERABILITY = "vulnerability"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def with_version(finding, location: str) -> str:
    return _hash(VULNERABILITY, finding.identifier, finding.package, location, finding.installed_version)


def without_version(finding, location: str) -> str:
    installed = finding.installed_version
    if installed and location:
        location = re.sub(rf"(?<=[-_@/]){re.escape(installed)}(?=[./_-]|$)", "*", location)
    return _hash(VULNERABILITY, finding.identifier, finding.package, location)


def rewrite(finding, locations, source, target) -> bool:
    for location in locations:
        if source(finding, location) == finding.fingerprint:
            finding.fingerprint = target(finding, location)
            return True
    return False


def package_paths(report) -> dict[tuple[str, str], set[str]]:
    """(identifier, package) -> the package paths of the report's raw file; empty when it cannot be read."""
    from scanners.parsers.common import ReportParseError
    from scanners.parsers.trivy import parse_trivy

    if not report.file:
        return {}
    try:
        with report.file.open("rb") as raw:
            parsed = parse_trivy(raw)
    except (OSError, ReportParseError, ValueError):
        return {}
    paths: dict[tuple[str, str], set[str]] = {}
    for item in parsed.findings:
        if item.pkg_path:
            paths.setdefault((item.identifier, item.package), set()).add(item.pkg_path)
    return paths


def convert(apps, source, target) -> None:
    Finding = apps.get_model("scanners", "Finding")
    Report = apps.get_model("scanners", "Report")
    fields = ["id", "report_id", "identifier", "package", "installed_version", "target", "fingerprint"]
    vulnerabilities = Finding.objects.filter(finding_class=VULNERABILITY).only(*fields).order_by("id")
    unresolved_reports = set()
    last = 0
    while batch := list(vulnerabilities.filter(id__gt=last)[:BATCH]):
        last = batch[-1].id
        changed = []
        for finding in batch:
            if rewrite(finding, ("", finding.target), source, target):
                changed.append(finding)
            else:
                unresolved_reports.add(finding.report_id)
        Finding.objects.bulk_update(changed, ["fingerprint"], batch_size=BATCH)
    for report in Report.objects.filter(id__in=unresolved_reports).iterator():
        paths = package_paths(report)
        changed = [
            finding
            for finding in vulnerabilities.filter(report_id=report.id)
            if rewrite(finding, sorted(paths.get((finding.identifier, finding.package), ())), source, target)
        ]
        Finding.objects.bulk_update(changed, ["fingerprint"], batch_size=BATCH)


def forwards(apps, schema_editor):
    convert(apps, with_version, without_version)


def backwards(apps, schema_editor):
    convert(apps, without_version, with_version)


class Migration(migrations.Migration):
    dependencies = [
        ("scanners", "0003_loadteststat_transactions_and_unavailable_timing"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
