"""Trivy ingestion at scale: speed, and the worker's peak memory against the file's size.

1. 30,000 vulnerabilities over 40 targets, ingested twice: the first ingestion has nothing to compare with; the
   second, into the next run of the same branch, matches every finding against the first (all persisting, none
   new). Each must take at most 5 s. DefectDojo's users report ~10 minutes for 30k findings.
2. 1,000,000 findings (~1 GB), ingested by the portal (the file streamed, findings written in batches) and by the
   approach the portal used before (the whole file loaded with orjson, every finding in a list, then written),
   each in a process of its own whose peak RSS is read from the operating system. Targets: the portal's peak at
   most 3 times the file's size; its time at most 1.5 times the old approach's.

Both on SQLite, then on PostgreSQL if reachable (its own throwaway database, test_portal_bench_trivy).

    .venv/bin/python benchmarks/ingest_trivy.py [--findings 1000000] [--database URL ...]
"""

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line, run_child, setup_django, throwaway_database  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_PEAK_RATIO = 3.0
TARGET_TIME_RATIO = 1.5
FINDINGS = 30_000
TARGETS = 40
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_trivy"


def vulnerability(rng: random.Random, target: int, index: int, per_target: int, os_target: bool) -> dict:
    severities = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
    cve = f"CVE-{2015 + index % 10}-{target * per_target + index:05d}"
    return {
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
    }


def write_report(handle, findings: int, targets: int) -> None:
    """A schema 2 report as Trivy writes it, one Result at a time (a million findings never sit in memory)."""
    rng = random.Random(7)
    per_target = findings // targets
    handle.write(b'{"SchemaVersion": 2, "ArtifactName": "registry.example.com/shop/app:1.0", '
                 b'"ArtifactType": "container_image", "Results": [')
    for target in range(targets):
        os_target = target < targets // 10
        result = {
            "Target": f"registry.example.com/shop/app:1.0 (debian 12.{target})" if os_target
            else f"app/requirements-{target}.txt",
            "Class": "os-pkgs" if os_target else "lang-pkgs",
            "Type": "debian" if os_target else "pip",
            "Vulnerabilities": [vulnerability(rng, target, n, per_target, os_target) for n in range(per_target)],
        }
        handle.write((", " if target else "").encode() + json.dumps(result).encode())
    handle.write(b"]}")


def generate_report(findings: int = FINDINGS, targets: int = TARGETS) -> bytes:
    handle = io.BytesIO()
    write_report(handle, findings, targets)
    return handle.getvalue()


# --- the approach the portal used before streaming: the whole document in memory, every finding in a list ----------

def whole_file_parse(source, *, max_bytes=None):
    """Today's rules on the whole document loaded at once, as the portal parsed schema 2 reports until streaming."""
    import orjson

    from scanners.parsers import trivy

    document = orjson.loads(Path(source).read_bytes())
    seen, findings = set(), []
    for index, result in enumerate(document.get("Results") or []):
        for finding in trivy._result_findings(result, f"Results[{index}]"):
            if finding.fingerprint not in seen:
                seen.add(finding.fingerprint)
                findings.append(finding)
    artifact_type = document.get("ArtifactType", "")
    return trivy.TrivyReport(format="schema2", artifact_type=artifact_type, findings=findings,
                             artifact_name=trivy._strip_tag(document.get("ArtifactName", ""), artifact_type))


def measure_twice(database_url: str) -> dict:
    """The 30,000-finding case, in a child process whose DATABASE_URL is the database under test."""
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


def measure_large(database_url: str, path: Path, approach: str) -> dict:
    """One ingestion of the large file by one approach, in a process of its own (the parent reads its peak)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["REPORT_MAX_BYTES"] = str(max(path.stat().st_size, 1024))  # the case is larger than the default
    setup_django()
    from deliveries.models import Project
    from scanners import services

    if approach == "whole-file":
        services.parse = lambda kind, source, progress=None: whole_file_parse(source)
    with throwaway_database():
        from django.db import connection

        run = Project.objects.create(name="Bench", slug="bench").runs.create(branch="dev", build_number=1)
        with open(path, "rb") as handle:
            report, _ = services.receive_report(run=run, file=handle, original_name="app.json", kind="trivy",
                                                queue=False)
        started = time.perf_counter()
        report = services.ingest_report(report_id=report.pk)
        seconds = time.perf_counter() - started
        assert report.status == "parsed", report.error
        report.file.delete(save=False)
        return {"vendor": connection.vendor, "seconds": seconds, "findings": report.summary["findings"]}


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
    parser.add_argument("--findings", type=int, default=1_000_000, help="findings of the large case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--large", choices=["streamed", "whole-file"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        with open(args.generate, "wb") as handle:
            write_report(handle, args.findings, 100)
        print("{}")
        return 0
    if args.child:
        result = measure_large(args.child, args.file, args.large) if args.large else measure_twice(args.child)
        print(json.dumps(result))
        return 0

    databases = args.database or ["sqlite://"] + ([POSTGRES_URL] if postgres_reachable() else [])
    path = REPO_ROOT / "var" / "bench" / f"trivy-{args.findings}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run_child([sys.executable, __file__, "--generate", str(path), "--findings", str(args.findings)])
    size_mb = path.stat().st_size / 1e6
    lines, all_ok = [], True
    for url in databases:
        result, _ = run_child([sys.executable, __file__, "--child", url])
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

        measured = {}
        for approach in ("whole-file", "streamed"):
            command = [sys.executable, __file__, "--child", url, "--large", approach, "--file", str(path)]
            measured[approach] = run_child(command)
        (old, old_peak), (new, new_peak) = measured["whole-file"], measured["streamed"]
        time_ratio, peak_ratio = new["seconds"] / old["seconds"], new_peak / size_mb
        print(f"{vendor}: {new['findings']:,} findings from {size_mb:,.0f} MB: streamed {new['seconds']:.1f} s, "
              f"peak {new_peak:,.0f} MB ({peak_ratio:.2f}x the file); whole file in memory (before) "
              f"{old['seconds']:.1f} s, peak {old_peak:,.0f} MB ({old_peak / size_mb:.2f}x the file)")
        correct = new["findings"] == old["findings"] == args.findings
        all_ok &= correct and time_ratio <= TARGET_TIME_RATIO and peak_ratio <= TARGET_PEAK_RATIO
        lines.append(bench_line(f"trivy_large_time_vs_whole_file_{vendor}", time_ratio, TARGET_TIME_RATIO,
                                correct and time_ratio <= TARGET_TIME_RATIO))
        lines.append(bench_line(f"trivy_large_peak_vs_file_size_{vendor}", peak_ratio, TARGET_PEAK_RATIO,
                                correct and peak_ratio <= TARGET_PEAK_RATIO))
    print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
