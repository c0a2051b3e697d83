"""Trivy ingestion at scale: 30,000 vulnerabilities over 40 targets, ingested twice.

The first ingestion has nothing to compare with; the second, into the next run of the same
branch, matches every finding against the first (all persisting, none new). Each must take
at most 5 s, on SQLite and on PostgreSQL. DefectDojo's users report ~10 minutes for 30k findings.

    .venv/bin/python benchmarks/ingest_trivy.py              # SQLite, then PostgreSQL if reachable
    .venv/bin/python benchmarks/ingest_trivy.py --database postgres://postgres@127.0.0.1:5432/portal
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line, setup_django, throwaway_database  # noqa: E402

TARGET_SECONDS = 5.0
FINDINGS = 30_000
TARGETS = 40
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/portal"


def generate_report() -> bytes:
    rng = random.Random(7)
    severities = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
    results = []
    per_target = FINDINGS // TARGETS
    for target in range(TARGETS):
        os_target = target < 4
        vulnerabilities = []
        for index in range(per_target):
            cve = f"CVE-{2015 + index % 10}-{target * per_target + index:05d}"
            vulnerabilities.append({
                "VulnerabilityID": cve,
                "PkgID": f"pkg-{index % 400}@1.{index % 7}.{index % 11}",
                "PkgName": f"pkg-{index % 400}",
                "PkgPath": "" if os_target else f"app/lib/{target}/pkg-{index % 400}/METADATA",
                "InstalledVersion": f"1.{index % 7}.{index % 11}",
                "FixedVersion": f"1.{index % 7}.{index % 11 + 1}",
                "Status": "fixed",
                "Severity": rng.choice(severities),
                "SeveritySource": "nvd",
                "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
                "Title": f"pkg-{index % 400}: a flaw in the parser of something {index}",
                "Description": "A long description of the flaw. " * 8,
                "CweIDs": ["CWE-787"],
                "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 9.8}},
                "References": [f"https://example.com/advisory/{cve}"] * 3,
                "PublishedDate": "2021-01-01T00:00:00Z",
                "LastModifiedDate": "2022-01-01T00:00:00Z",
            })
        results.append({
            "Target": f"registry.example.com/shop/app:1.0 (debian 12.{target})" if os_target
            else f"app/requirements-{target}.txt",
            "Class": "os-pkgs" if os_target else "lang-pkgs",
            "Type": "debian" if os_target else "pip",
            "Vulnerabilities": vulnerabilities,
        })
    return json.dumps({
        "SchemaVersion": 2, "ArtifactName": "registry.example.com/shop/app:1.0", "ArtifactType": "container_image",
        "Results": results,
    }).encode()


def measure(database_url: str) -> dict:
    """Runs in a child process whose DATABASE_URL is the database under test."""
    os.environ["DATABASE_URL"] = database_url
    setup_django()
    import orjson

    from deliveries.models import Project
    from scanners import services
    from scanners.models import Finding

    content = generate_report()
    started = time.perf_counter()
    orjson.loads(content)
    json_seconds = time.perf_counter() - started
    with throwaway_database():
        from django.db import connection

        project = Project.objects.create(name="Bench", slug="bench")
        first_run = project.runs.create(branch="dev", build_number=1)
        second_run = project.runs.create(branch="dev", build_number=2)
        timings = {}
        for name, run in (("first", first_run), ("second", second_run)):
            started = time.perf_counter()
            report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name="app.json",
                                                kind="trivy", queue=False)
            report = services.ingest_report(report_id=report.pk)
            timings[name] = time.perf_counter() - started
            assert report.status == "parsed", report.error
        again, created = services.receive_report(run=first_run, file=io.BytesIO(content), original_name="app.json")
        return {
            "vendor": connection.vendor,
            "json_seconds": json_seconds,
            "bytes": len(content),
            "first": timings["first"],
            "second": timings["second"],
            "first_findings": Finding.objects.filter(run=first_run).count(),
            "second_new": Finding.objects.filter(run=second_run, new_on_branch=True).count(),
            "second_persisting": Finding.objects.filter(run=second_run, new_on_branch=False).count(),
            "reupload_created": created,
        }


def postgres_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", action="append", help="DATABASE_URL to measure (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    databases = args.database or ["sqlite://"] + ([POSTGRES_URL] if postgres_reachable() else [])
    lines, all_ok = [], True
    for url in databases:
        child = subprocess.run([sys.executable, __file__, "--child", url], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=False)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        result = json.loads(child.stdout.strip().splitlines()[-1])
        vendor = result["vendor"]
        print(f"{vendor}: {result['first_findings']:,} findings from {result['bytes'] / 1e6:.1f} MB; "
              f"orjson alone {result['json_seconds']:.2f} s; first ingestion {result['first']:.2f} s "
              f"({result['first'] / result['json_seconds']:.1f}x the JSON parse); second {result['second']:.2f} s, "
              f"{result['second_persisting']:,} persisting, {result['second_new']} new; "
              f"re-upload created a duplicate: {result['reupload_created']}")
        correct = (result["first_findings"] == FINDINGS and result["second_new"] == 0
                   and result["second_persisting"] == FINDINGS and not result["reupload_created"])
        all_ok &= correct
        for name in ("first", "second"):
            ok = correct and result[name] <= TARGET_SECONDS
            all_ok &= ok
            lines.append(bench_line(f"trivy_ingest_{name}_{vendor}", result[name], TARGET_SECONDS, ok))
    print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
