"""JMeter ingestion at scale: a 1,000,000-sample CSV JTL (~100 MB, 20 labels, 1% errors).

Full ingestion (parse, exact statistics, time buckets, DB writes) is timed against pyarrow's CSV
reader merely reading the same file, and a plain csv-module + sort approach is shown as the naive
baseline. Each is measured in a process of its own, best of a few repetitions, with that process's peak
memory as the operating system counted it (the file is generated in another one).

Targets: ingestion <= 1.5x the pyarrow read time; peak memory of the ingesting process <= 400 MB.

    .venv/bin/python benchmarks/ingest_jmeter.py [--samples 1000000] [--database URL]
"""

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line, run_child, setup_django, throwaway_database  # noqa: E402

TARGET_RATIO = 1.5
TARGET_PEAK_MB = 400
LABELS = 20
REPEAT = 3


def generate(path: Path, samples: int) -> None:
    """A JTL as JMeter 5 writes it by default: header, 17 columns, epoch-ms timestamps."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(42)
    labels = np.array([f"/api/endpoint-{i:02d}" for i in range(LABELS)])
    label_index = rng.integers(0, LABELS, samples)
    elapsed = rng.lognormal(4.5, 0.6, samples).astype(np.int64) + 1
    start = 1_700_000_000_000 + np.sort(rng.integers(0, 3_600_000, samples))
    failed = rng.random(samples) < 0.01
    threads = rng.integers(1, 101, samples)
    table = pa.table({
        "timeStamp": start,
        "elapsed": elapsed,
        "label": pa.array(labels[label_index]),
        "responseCode": np.where(failed, "500", "200"),
        "responseMessage": np.where(failed, "Internal Server Error", "OK"),
        "threadName": pa.array(np.char.add("Users 1-", threads.astype(str))),
        "dataType": np.full(samples, "text"),
        "success": np.where(failed, "false", "true"),
        "failureMessage": np.where(failed, "Response code was 500", ""),
        "bytes": rng.integers(500, 20_000, samples),
        "sentBytes": rng.integers(100, 900, samples),
        "grpThreads": threads,
        "allThreads": threads,
        "URL": pa.array(np.char.add("http://shop.example.com", labels[label_index])),
        "Latency": (elapsed * 0.8).astype(np.int64),
        "IdleTime": np.zeros(samples, dtype=np.int64),
        "Connect": rng.integers(0, 5, samples),
    })
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def phase_read(path: Path) -> dict:
    import pyarrow.csv as pa_csv

    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        table = pa_csv.read_csv(path)
        times.append(time.perf_counter() - started)
        rows = table.num_rows
        del table
    return {"seconds": min(times), "rows": rows}


def phase_naive(path: Path) -> dict:
    """Read every row with the csv module, group elapsed by label, sort, take percentiles."""
    started = time.perf_counter()
    by_label: dict[str, list[int]] = {}
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        label_at, elapsed_at = header.index("label"), header.index("elapsed")
        for row in reader:
            by_label.setdefault(row[label_at], []).append(int(row[elapsed_at]))
    for values in by_label.values():
        values.sort()
        n = len(values)
        for p in (50, 90, 95, 99):
            position = p * (n + 1) / 100
            values[min(max(int(position), 1), n) - 1]
    return {"seconds": time.perf_counter() - started}


def phase_ingest(path: Path, database_url: str) -> dict:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    setup_django()
    from django.db import connection

    from deliveries.models import Project
    from scanners import services

    with throwaway_database():
        project = Project.objects.create(name="Bench", slug="bench")
        times, store_times = [], []
        for build in range(1, REPEAT):
            run = project.runs.create(branch="dev", build_number=build)
            started = time.perf_counter()
            with open(path, "rb") as handle:
                report, _ = services.receive_report(run=run, file=handle, original_name=path.name, kind="jmeter",
                                                    queue=False)
            store_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = services.ingest_report(report_id=report.pk)
            times.append(time.perf_counter() - started)
            assert report.status == "parsed", report.error
        return {
            "seconds": min(times),
            "store_seconds": min(store_times),
            "samples": report.summary["samples"],
            "errors": report.summary["errors"],
            "labels": len(report.summary["labels"]),
            "p95": report.summary["total"]["p95"],
            "vendor": connection.vendor,
        }


def child(phase: str, path: Path, database: str = "", samples: int = 0) -> dict:
    """A phase run in a process of its own, with its peak RSS (MB) under "peak_mb"."""
    command = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--samples", str(samples)]
    if database:
        command += ["--database", database]
    result, peak = run_child(command)
    return {**result, "peak_mb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL", ""), help="default: SQLite")
    parser.add_argument("--phase", choices=["generate", "read", "naive", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        generate(args.file, args.samples)
        print("{}")
        return 0
    if args.phase:
        phases = {"read": phase_read, "naive": phase_naive}
        result = phase_ingest(args.file, args.database) if args.phase == "ingest" else phases[args.phase](args.file)
        print(json.dumps(result))
        return 0

    path = REPO_ROOT / "var" / "bench" / f"jtl-{args.samples}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        child("generate", path, samples=args.samples)
    size_mb = path.stat().st_size / 1e6
    read = child("read", path)
    naive = child("naive", path)
    ingest = child("ingest", path, args.database)
    ratio = ingest["seconds"] / read["seconds"]
    print(f"file: {path.name}, {size_mb:.0f} MB, {read['rows']:,} samples")
    print(f"pyarrow read_csv (baseline):      {read['seconds']:.2f} s, peak {read['peak_mb']:.0f} MB")
    print(f"csv module + sort (naive):        {naive['seconds']:.2f} s ({naive['seconds'] / read['seconds']:.1f}x)")
    print(f"portal ingestion on {ingest['vendor']}:  {ingest['seconds']:.2f} s ({ratio:.2f}x), "
          f"peak {ingest['peak_mb']:.0f} MB ({ingest['peak_mb'] / size_mb:.1f}x the file); "
          f"storing the raw file beforehand took {ingest['store_seconds']:.2f} s")
    print(f"parsed: {ingest['samples']:,} samples, {ingest['errors']:,} errors, {ingest['labels']} labels, "
          f"total p95 {ingest['p95']:.1f} ms")
    correct = ingest["samples"] == read["rows"] and ingest["labels"] == LABELS
    print(bench_line("jmeter_ingest_vs_pyarrow_read", ratio, TARGET_RATIO, correct and ratio <= TARGET_RATIO))
    print(bench_line("jmeter_ingest_peak_mb", ingest["peak_mb"], TARGET_PEAK_MB, ingest["peak_mb"] <= TARGET_PEAK_MB))
    return 0 if correct and ratio <= TARGET_RATIO and ingest["peak_mb"] <= TARGET_PEAK_MB else 1


if __name__ == "__main__":
    sys.exit(main())
