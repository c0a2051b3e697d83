"""What the benchmarks share: a throwaway database, and the BENCH line."""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.test_settings")
    import django

    django.setup()


@contextmanager
def throwaway_database():
    """A fresh, migrated test database (test_<name>), dropped afterwards."""
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(config, verbosity=0)


def bench_line(name: str, value: float, target: float, ok: bool) -> str:
    return f"BENCH {name} value={value:.3f} target={target:g} ok={str(ok).lower()}"


def run_child(command: list[str]) -> tuple[dict, float]:
    """Run a measurement in a process of its own: (the JSON object its last output line holds, its peak RSS in MB).

    The peak is the child's own ru_maxrss, read from os.wait4 by this (small) parent: nothing that ran before in
    another process counts, unlike RUSAGE_SELF in a process that ran a baseline first.
    """
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=errors, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command[1:3])} failed:\n{errors.read()}")
        lines = output.read().strip().splitlines()
    return json.loads(lines[-1]), usage.ru_maxrss / 1024
