"""Instructions per request of a stage-update callback and of the minimal view, counted by callgrind.

Where benchmarks/callbacks.py measures rates (which the machine's load moves), this counts the CPU instructions one
process spends per request, which the load does not: the figure to choose a change by. It runs itself under
`valgrind --tool=callgrind` with collection off, warms up, then counts a loop of requests through Django's test
client (the portal's settings, DEBUG off, persistent connection) on a throwaway PostgreSQL database
`portal_bench_instructions` (created, then dropped): stage updates of existing stages (each changes the stage, so
each writes the stage and its audit event), then the minimal view of benchmarks/callbacks_urls.py.

    .venv/bin/python benchmarks/callbacks_instructions.py [--requests 200] [--no-prepared-statements]

Needs valgrind (callgrind_control) and PostgreSQL on 127.0.0.1:5432 (user postgres). Prints the millions of
instructions per request of each, and their ratio. A callgrind output file for each loop is left in
var/bench/ (callgrind_annotate reads it).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from callbacks import admin_execute, portal_environment  # noqa: E402
from common import REPO_ROOT  # noqa: E402

DB_NAME = "portal_bench_instructions"
OUT_DIR = REPO_ROOT / "var" / "bench"


def counted(label: str):
    """In this process, under callgrind: `on` zeroes the counts and starts counting; any other label stops
    counting and dumps what was counted since, under that name."""
    pid = str(os.getpid())
    if label == "on":
        subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=on", pid], check=True, capture_output=True)
    else:
        subprocess.run(["callgrind_control", "--instr=off", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", f"--dump={label}", pid], check=True, capture_output=True)


def instructions_of(out_file: Path, label: str) -> int:
    """The instructions counted in the dump of `label` (callgrind writes it to out_file.<n>)."""
    for dump in out_file.parent.glob(out_file.name + ".*"):
        text = dump.read_text(errors="replace")
        if f"desc: Trigger: dump {label}\n" in text:
            return int(next(line for line in text.splitlines() if line.startswith("totals:")).split()[1])
    raise SystemExit(f"no callgrind dump for {label} beside {out_file}")


def child(requests: int) -> None:
    """Runs under callgrind: warm up, then count `requests` stage updates and `requests` minimal views."""
    import django

    django.setup()
    from django.test import Client

    from deliveries.models import Project, ProjectToken

    project = Project.objects.create(name="Bench", slug="bench")
    _, token = ProjectToken.issue(project=project, name="bench")
    client = Client(HTTP_HOST="127.0.0.1")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    statuses = ("running", "success", "failed")
    runs, stages = 5, 4

    def stage_update(index: int) -> None:
        # Every call changes its stage (the log excerpt at least): a stage UPDATE and an audit event each.
        body = {"name": f"Stage {index % stages}", "status": statuses[(index // (runs * stages)) % 3],
                "log_excerpt": f"request {index}"}
        response = client.post(f"/api/v1/projects/bench/runs/{index % runs + 1}/stages/", data=body,
                                content_type="application/json", **headers)
        assert response.status_code in (200, 201), response.content

    def minimal(_index: int) -> None:
        response = client.post("/bench/minimal/", data={}, content_type="application/json", **headers)
        assert response.status_code == 200, response.content

    for name, call in (("stage_update", stage_update), ("minimal", minimal)):
        for index in range(200):  # creates every stage, then warms caches and prepared statements
            call(index)
        counted("on")
        for index in range(200, 200 + requests):
            call(index)
        counted(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests counted of each (default 200)")
    parser.add_argument("--no-prepared-statements", action="store_true", help="DATABASE_PREPARED_STATEMENTS=false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests)
        return 0

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_file = OUT_DIR / f"callgrind.callbacks.{os.getpid()}"
    admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin_execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        with tempfile.TemporaryDirectory(prefix="bench-instructions-") as var_dir:
            # benchmarks/callbacks.py's environment (its settings, DEBUG off, the rate limit counting every call)
            env = {**portal_environment(Path(var_dir)), "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"}
            if args.no_prepared_statements:
                env["DATABASE_PREPARED_STATEMENTS"] = "false"
            subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=REPO_ROOT, env=env,
                           check=True)
            subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
                            sys.executable, __file__, "--child", "--requests", str(args.requests)],
                           cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    counts = {name: instructions_of(out_file, name) / args.requests for name in ("stage_update", "minimal")}
    print(f"stage update {counts['stage_update'] / 1e6:.2f} M instructions, minimal view "
          f"{counts['minimal'] / 1e6:.2f} M: ratio {counts['minimal'] / counts['stage_update']:.3f} "
          f"(dumps: {out_file}.*)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
