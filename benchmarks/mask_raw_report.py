"""Masking a raw report's secrets at scale: a Trivy report of --megabytes (default 100) with a secret every
--every findings, masked in place in a process of its own.

Targets: the masking adds at most 16 MB to its process's peak memory, whatever the file's size (it streams the
file in chunks: it must fit in the 3x-the-file bound of a Trivy ingestion); and it takes at most as long as
parsing the same file (parse_trivy, the step it follows), measured in the same run.

    .venv/bin/python benchmarks/mask_raw_report.py [--megabytes 100] [--every 1000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line  # noqa: E402

MAX_EXTRA_MB = 16.0
MAX_TIME_RATIO = 1.0

CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from scanners.parsers.{module} import {function}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
{call}
elapsed = time.perf_counter() - started
print(elapsed, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def write_report(path: Path, megabytes: int, every: int) -> int:
    """A schema 2 report of about `megabytes` MB; returns how many secrets it holds."""
    secrets = 0
    with open(path, "wb") as out:
        out.write(b'{"SchemaVersion": 2, "ArtifactName": "app", "Results": [')
        index, size = 0, 0
        while size < megabytes * 1024 * 1024:
            if index % every == 0:
                match = f"TOKEN = 'ghp_{index:036d}'"
                item = {"Target": f"app/{index}.py", "Class": "secret", "Secrets": [{
                    "RuleID": "github-pat", "Severity": "CRITICAL", "Title": "GitHub Personal Access Token",
                    "Match": match, "Code": {"Lines": [{"Number": 1, "Content": match, "IsCause": True}]}}]}
                secrets += 1
            else:
                item = {"Target": f"app/requirements-{index}.txt", "Class": "lang-pkgs", "Type": "pip",
                        "Vulnerabilities": [{"VulnerabilityID": f"CVE-2024-{index:05d}", "PkgName": f"pkg-{index}",
                                             "InstalledVersion": "1.0", "FixedVersion": "1.1", "Severity": "HIGH",
                                             "Title": "a flaw", "Description": "A long description. " * 10}]}
            chunk = (b"," if index else b"") + json.dumps(item).encode()
            out.write(chunk)
            size += len(chunk)
            index += 1
        out.write(b"]}")
    return secrets


def in_child(module: str, function: str, call: str) -> tuple[float, float]:
    code = CHILD.format(root=str(REPO_ROOT), module=module, function=function, call=call)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    elapsed, extra_mb = output.split()
    return float(elapsed), float(extra_mb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--every", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mask-bench-") as directory:
        path = Path(directory) / "report.json"
        secrets = write_report(path, options.megabytes, options.every)
        size_mb = path.stat().st_size / 1024 / 1024
        parse_seconds, parse_mb = in_child("trivy", "parse_trivy", f"parse_trivy({str(path)!r})")
        started = time.perf_counter()
        mask_seconds, mask_mb = in_child("masking", "mask_file",
                                         f"mask_file({str(path)!r}, reported_at_least={secrets})")
        assert b"ghp_0" not in path.read_bytes(), "a secret was left in clear"
        wall = time.perf_counter() - started
    print(f"{size_mb:.0f} MB, {secrets} secrets: parse {parse_seconds:.2f} s (+{parse_mb:.0f} MB), "
          f"mask {mask_seconds:.2f} s (+{mask_mb:.1f} MB, {size_mb / mask_seconds:.0f} MB/s; {wall:.2f} s with start)")
    ratio = mask_seconds / parse_seconds
    print(bench_line("mask_raw_report_extra_memory_mb", mask_mb, MAX_EXTRA_MB, mask_mb <= MAX_EXTRA_MB))
    print(bench_line("mask_raw_report_time_vs_parse", ratio, MAX_TIME_RATIO, ratio <= MAX_TIME_RATIO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
