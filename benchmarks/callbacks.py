"""Stage callbacks per second through gunicorn on PostgreSQL, against a minimal Django JSON view on the same stack.

Jenkins reports every stage start and finish; a farm of agents running many pipelines at once hammers the stage
upsert. This starts gunicorn (the portal's own settings, DEBUG off, persistent database connections) on a
throwaway PostgreSQL database `portal_bench_callbacks` (created, then dropped), and loads it with wrk from
loopback: POST /api/v1/projects/bench/runs/<n>/stages/ with a Bearer project token, spread over 50 runs x 20
stage names (the first requests create the runs and stages concurrently, the rest update them), then the same
POST to /bench/minimal/, a view that only answers {"ok": true} through the same middleware.

Afterwards it checks that no stage was lost or duplicated: a row for every (run, stage) pair the API answered
200 or 201 for, none for a pair never sent, no pair twice, one run per build number, every status one of those
sent. It also prints what each request costs the whole
machine in CPU, and the ceiling that follows: the ratio a stage callback would reach if it cost the machine what
a minimal request does plus what PostgreSQL spends on its write (no work of the API's own, no wait on the disk).

The targets: no stage lost or duplicated, no error, and at least 0.15 of the minimal view's rate. The stage
upsert is the same code on every database, under the run's row lock: one read written in SQL
(deliveries.services.locked_stage: Django building it cost over a third of the callback's CPU), and the stage's
UPDATE and the audit event's INSERT in statements made once per process (portal.queries). Simplicity over
the last percent: on an idle 2-CPU machine the ceiling is about 0.5, which the single-statement PostgreSQL path
this replaced did not reach either. gunicorn runs the portal's number of workers (portal.gunicorn_conf: one more
than the CPUs) for both.

    .venv/bin/python benchmarks/callbacks.py                      # the portal's sync workers, 10 s per measure
    .venv/bin/python benchmarks/callbacks.py --worker-class gthread --threads 4
    .venv/bin/python benchmarks/callbacks.py --compare-workers    # sync and gthread, one after the other
    .venv/bin/python benchmarks/callbacks.py --no-prepared-statements  # DATABASE_PREPARED_STATEMENTS=false

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and wrk (installed with apt-get when missing).
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
from portal.gunicorn_conf import workers as PORTAL_WORKERS  # noqa: E402

DB_NAME = "portal_bench_callbacks"  # its own database: never portal or test_portal
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
SLUG = "bench"
RUNS, STAGES = 50, 20
STATUSES_SENT = {"running", "success", "failed"}
TARGET_RATIO = 0.15
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, capture_output=True, check=False, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=False, timeout=600)
        subprocess.run(install, capture_output=True, check=True, timeout=600)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


# --- The throwaway database and the portal's environment ------------------------------------------


def admin_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


def analyze() -> None:
    """Statistics of the tables the warm-up filled, as autovacuum keeps them on a live database (a fresh one has
    none, and the planner would take its tables for empty)."""
    import psycopg

    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True,
                         connect_timeout=5) as connection:
        connection.execute("ANALYZE")


@contextmanager
def throwaway_database():
    admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin_execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        yield
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def portal_environment(var_dir: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PORTAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.callbacks_settings",
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=secrets.token_urlsafe(48),
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        PORTAL_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO_ROOT),
        # the per-token limit still counts every call (its cost is measured) but never refuses one: an idle machine
        # sends more than the default 6000 a minute, and 429s would be counted as errors
        API_RATE_LIMIT="100000000/min",
    )
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


PROBE = """
import json
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client(HTTP_HOST="127.0.0.1")
headers = {"HTTP_AUTHORIZATION": "Bearer %s", "content_type": "application/json"}
url = "/api/v1/projects/%s/runs/%d/stages/"
client.post(url, data={"name": "probe", "status": "running"}, **headers)
with CaptureQueriesContext(connection) as update:
    response = client.post(url, data={"name": "probe", "status": "success"}, **headers)
assert response.status_code == 200, response.content
health_checks = bool(connection.settings_dict.get("CONN_HEALTH_CHECKS"))
print(json.dumps({"sql": [query["sql"] for query in update.captured_queries], "health_checks": health_checks}))
"""


def probe_queries(env: dict, token: str) -> dict:
    """The SQL of one stage update (existing run and stage), on a build number the load does not use."""
    out = manage(env, "shell", "-c", PROBE % (token, SLUG, RUNS + 1000))
    return json.loads(out.strip().splitlines()[-1])


# --- gunicorn and wrk ------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each process (Linux /proc); processes gone are left out."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def cpu_spent(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds the processes spent since `before`: a process that ended meanwhile (an autovacuum worker on the
    benchmark's database) is not counted, rather than counted negative."""
    return sum(now - before.get(pid, 0.0) for pid, now in cpu_seconds(pids).items())


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all cores (Linux /proc/stat); waiting on the disk
    counts as idle, time stolen by the hypervisor as neither."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = ticks
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, (idle + iowait) / hz


def children_of(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def database_backends() -> list[int]:
    """PostgreSQL backends serving the benchmark's database (their title names it)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if DB_NAME.encode() in cmdline.read_bytes() and b"postgres" in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env: dict, *, workers: int, worker_class: str, threads: int, log_path: Path):
    port = free_port()
    command = [GUNICORN, "portal.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", worker_class, "--chdir", str(REPO_ROOT), "--log-level", "warning",
               "--backlog", "2048", "--keep-alive", "5"]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    with open(log_path, "ab") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    sys.exit(f"gunicorn did not answer {url} within {timeout:.0f} s")


def run_wrk(wrk: str, url: str, script: str, *, seconds: float, threads: int, connections: int, env: dict) -> dict:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "--latency", "-s",
               str(BENCH_DIR / script), url]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    if done.returncode != 0:
        sys.exit(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)  # the distribution's line, not a +/- Stdev share
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "latency_avg": latency.group(1) if latency else "?",
        "latency_p99": p99.group(1) if p99 else "?",
        "sent": [(int(start), int(count))
                 for start, count in re.findall(r"SENT thread=\d+ start=(\d+) count=(\d+)", out)],
        "acked": {(int(number), f"Stage {stage}")
                  for listed in re.findall(r"ACKED thread=\d+ ?(.*)", out)
                  for number, stage in re.findall(r"(\d+):(\d+)", listed)},
    }


# --- What the database holds afterwards ------------------------------------------------------------


def pairs_sent(sent: list[tuple[int, int]]) -> set[tuple[int, str]]:
    """The (build number, stage name) pairs the Lua script generated (same arithmetic as callbacks.lua)."""
    pairs = set()
    size = RUNS * STAGES
    for start, count in sent:
        for index in range(min(count, size)):
            pair = (start + index) % size
            pairs.add((pair % RUNS + 1, f"Stage {pair // RUNS}"))
    return pairs


def check_rows(expected: set[tuple[int, str]], acked: set[tuple[int, str]]) -> dict:
    """What the database holds against what was sent (`expected`) and what the API said it stored (`acked`)."""
    import psycopg

    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://"), connect_timeout=5) as connection:
        rows = connection.execute(
            """SELECT r.build_number, s.name, s.status FROM deliveries_stage s
               JOIN deliveries_pipelinerun r ON r.id = s.run_id
               JOIN deliveries_project p ON p.id = r.project_id
               WHERE p.slug = %s AND r.build_number <= %s""",
            [SLUG, RUNS],
        ).fetchall()
        runs = connection.execute(
            """SELECT r.build_number, count(*) FROM deliveries_pipelinerun r
               JOIN deliveries_project p ON p.id = r.project_id WHERE p.slug = %s AND r.build_number <= %s
               GROUP BY r.build_number""",
            [SLUG, RUNS],
        ).fetchall()
        audit_events = connection.execute("SELECT count(*) FROM deliveries_auditevent").fetchone()[0]
    found = [(number, name) for number, name, _ in rows]
    return {
        "rows": len(rows),
        "expected": len(expected),
        "missing": len(acked - set(found)),
        "in_flight": len(expected - acked - set(found)),  # sent as wrk stopped, never answered nor stored
        "unexpected": len(set(found) - expected),
        "duplicated": len(found) - len(set(found)),
        "runs": len(runs),
        "missing_runs": len({number for number, _ in acked} - {number for number, _ in runs}),
        "duplicated_runs": sum(count - 1 for _, count in runs),
        "bad_statuses": sorted({status for _, _, status in rows} - STATUSES_SENT),
        "audit_events": audit_events,
    }


# --- The measure -----------------------------------------------------------------------------------


def measure(args, wrk: str, env: dict, token: str, *, worker_class: str, log_path: Path) -> dict:
    wrk_env = {"BENCH_TOKEN": token, "BENCH_PATH_PREFIX": f"/api/v1/projects/{SLUG}/runs/",
               "BENCH_RUNS": str(RUNS), "BENCH_STAGES": str(STAGES)}
    load = {"threads": args.wrk_threads, "connections": args.connections}
    api, minimal, sent, acked, warm_errors = [], [], [], set(), 0
    with gunicorn(env, workers=args.workers, worker_class=worker_class, threads=args.threads,
                  log_path=log_path) as (base, master):

        def measured(url, script, seconds, env):
            """A wrk run, with the CPU time gunicorn's workers, PostgreSQL and the whole machine (wrk and the kernel
            included) spent per request, and the share of the machine's CPU left idle."""
            workers, backends = children_of(master), database_backends()
            before = cpu_seconds(workers), cpu_seconds(backends), machine_cpu()
            result = run_wrk(wrk, url, script, seconds=seconds, env=env, **load)
            requests = max(result["requests"], 1)
            result["cpu_ms_gunicorn"] = cpu_spent(before[0], workers) * 1000 / requests
            # Backends started meanwhile (an autovacuum worker) count from zero.
            result["cpu_ms_postgres"] = cpu_spent(before[1], database_backends()) * 1000 / requests
            busy, idle = (now - then for now, then in zip(machine_cpu(), before[2], strict=True))
            result["cpu_ms_machine"] = busy * 1000 / requests
            result["idle_share"] = idle / (busy + idle) if busy + idle else 0.0
            return result

        # Warm-up: the first callbacks create the runs and stages (concurrently, as a Jenkins farm would); go on
        # until every (run, stage) pair exists, so that the measure is of updates, the steady state.
        offset, deadline = 0, time.monotonic() + 120
        while True:
            warm = run_wrk(wrk, base, "callbacks.lua", seconds=args.warmup,
                           env={**wrk_env, "BENCH_OFFSET": str(offset)}, **load)
            sent += warm["sent"]
            acked |= warm["acked"]
            warm_errors += warm["non_2xx"] + warm["socket_errors"]
            offset += max(count for _, count in warm["sent"])
            if len(pairs_sent(sent)) >= RUNS * STAGES or time.monotonic() > deadline:
                break
        analyze()
        for _ in range(args.rounds):
            hot = measured(base, "callbacks.lua", args.duration, {**wrk_env, "BENCH_OFFSET": str(offset)})
            offset += max(count for _, count in hot["sent"])
            sent += hot["sent"]
            acked |= hot["acked"]
            api.append({**hot, "errors": hot["non_2xx"] + hot["socket_errors"]})
            run_wrk(wrk, base + "/bench/minimal/", "minimal.lua", seconds=args.warmup, env=wrk_env, **load)
            minimal.append(measured(base + "/bench/minimal/", "minimal.lua", args.duration, wrk_env))
    api[0]["errors"] += warm_errors
    best_api = statistics.median(result["rps"] for result in api)
    best_minimal = statistics.median(result["rps"] for result in minimal)
    return {"worker_class": worker_class, "api": api, "minimal": minimal, "api_rps": best_api,
            "minimal_rps": best_minimal, "errors": sum(result["errors"] for result in api),
            "minimal_errors": sum(r["non_2xx"] + r["socket_errors"] for r in minimal), "sent": sent, "acked": acked}


def report(result: dict, args) -> None:
    label = result["worker_class"] + (f" x{args.threads} threads" if result["worker_class"] == "gthread" else "")
    for name, runs in (("stage upsert", result["api"]), ("minimal view", result["minimal"])):
        for run in runs:
            print(f"  {label:<20} {name:<14} {run['rps']:>9,.0f} req/s  {run['requests']:>7,} requests  "
                  f"latency avg {run['latency_avg']} p99 {run['latency_p99']}  non-2xx {run['non_2xx']}  "
                  f"socket errors {run['socket_errors']}  CPU per request: gunicorn {run['cpu_ms_gunicorn']:.2f} ms, "
                  f"PostgreSQL {run['cpu_ms_postgres']:.2f} ms, whole machine {run['cpu_ms_machine']:.2f} ms "
                  f"({run['idle_share']:.0%} idle)")


def ceiling(result: dict) -> dict:
    """The best ratio any stage callback that writes to PostgreSQL could reach on this machine: were a stage request
    to cost the machine what a minimal one does, plus what PostgreSQL spends on the write, with every CPU busy
    (no wait on the disk). What separates the measured ratio from it is the API's own work (token, JSON,
    validation, the driver) and that waiting."""
    minimal = statistics.median(run["cpu_ms_machine"] for run in result["minimal"])
    postgres = statistics.median(run["cpu_ms_postgres"] for run in result["api"])
    best_rps = (os.cpu_count() or 1) * 1000 / (minimal + postgres) if minimal + postgres else 0.0
    return {"minimal_ms": minimal, "postgres_ms": postgres,
            "stage_ms": statistics.median(run["cpu_ms_machine"] for run in result["api"]),
            "ratio": best_rps / result["minimal_rps"] if result["minimal_rps"] else 0.0,
            "idle_share": statistics.median(run["idle_share"] for run in result["api"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per load (default 10)")
    parser.add_argument("--warmup", type=float, default=2,
                        help="seconds of warm-up before each measure, repeated for the stage callbacks until every "
                             "stage exists (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="measures of each, the median is kept (default 3)")
    parser.add_argument("--workers", type=int, default=PORTAL_WORKERS,
                        help=f"gunicorn workers (default {PORTAL_WORKERS}, the portal's: portal.gunicorn_conf)")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument("--compare-workers", action="store_true", help="measure sync, then gthread")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--no-prepared-statements", action="store_true",
                        help="DATABASE_PREPARED_STATEMENTS=false: parameters bound on the client, no prepared "
                             "statements (as behind PgBouncer in transaction mode)")
    parser.add_argument("--no-health-checks", action="store_true",
                        help="experiment: CONN_HEALTH_CHECKS off (not the portal's settings)")
    args = parser.parse_args()

    wrk = ensure_wrk()
    classes = ["sync", "gthread"] if args.compare_workers else [args.worker_class]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as var_dir:
        env = portal_environment(Path(var_dir))
        if args.no_prepared_statements:
            env["DATABASE_PREPARED_STATEMENTS"] = "false"
        if args.no_health_checks:
            env["BENCH_CONN_HEALTH_CHECKS"] = "0"
        log_path = Path(var_dir) / "gunicorn.log"
        for worker_class in classes:
            with throwaway_database():
                manage(env, "migrate", "--no-input", "-v0")
                manage(env, "shell", "-c",
                       f"from deliveries.models import Project; Project.objects.create(name='Bench', slug='{SLUG}')")
                token = manage(env, "create_project_token", SLUG, "--name", "bench").strip()
                queries = probe_queries(env, token)
                result = measure(args, wrk, env, token, worker_class=worker_class, log_path=log_path)
                result["check"] = check_rows(pairs_sent(result["sent"]), result["acked"])
                result["queries"] = queries
                results.append(result)
        server_log = log_path.read_text(errors="replace") if log_path.exists() else ""

    experiments = [name for name, on in (("no prepared statements", args.no_prepared_statements),
                                         ("no health checks", args.no_health_checks)) if on]
    if experiments:
        print(f"EXPERIMENT, not the portal's settings: {', '.join(experiments)}")
    print(f"Stage upserts vs a minimal Django JSON view, gunicorn {args.workers} workers, PostgreSQL, wrk "
          f"{args.wrk_threads} threads x {args.connections} connections, {args.duration:g} s after {args.warmup:g} s "
          f"warm-up; {RUNS} runs x {STAGES} stages; {os.cpu_count()} CPUs shared by wrk, gunicorn and PostgreSQL")
    for result in results:
        report(result, args)
        check = result["check"]
        print(f"  {result['worker_class']}: {check['rows']} stage rows for {check['expected']} pairs sent "
              f"(answered but missing {check['missing']}, unexpected {check['unexpected']}, duplicated "
              f"{check['duplicated']}, in flight when wrk stopped and not stored {check['in_flight']}); "
              f"{check['runs']} runs (answered but missing {check['missing_runs']}, duplicated "
              f"{check['duplicated_runs']}); statuses outside those sent: {check['bad_statuses'] or 'none'}; "
              f"{check['audit_events']:,} audit events")
        queries = result["queries"]
        health = " (+ Django's `SELECT 1` health check on the reused connection)" if queries["health_checks"] else ""
        print(f"  {len(queries['sql'])} SQL statements per stage update{health}: "
              + " | ".join(query.split(" FROM")[0][:48] for query in queries["sql"]))
    if "Traceback" in server_log or "[ERROR]" in server_log:
        print("gunicorn log:\n" + server_log[-4000:], file=sys.stderr)

    chosen = max(results, key=lambda result: result["api_rps"])
    check = chosen["check"]
    # Stages and runs lost or duplicated, and rows nobody sent.
    wrong = (check["missing"] + check["duplicated"] + check["duplicated_runs"] + check["missing_runs"]
             + check["unexpected"] + len(check["bad_statuses"]))
    intact = wrong == 0
    ratio = chosen["api_rps"] / chosen["minimal_rps"] if chosen["minimal_rps"] else 0.0
    if len(results) > 1:
        print(f"  best: {chosen['worker_class']}")
    print(f"  ratio stage upsert / minimal view: {ratio:.3f}; rows intact: {intact}")
    best = ceiling(chosen)
    print(f"  ceiling: a minimal request costs the machine {best['minimal_ms']:.2f} ms of CPU and PostgreSQL spends "
          f"{best['postgres_ms']:.2f} ms on a stage write, so no stage callback written to the database as it "
          f"arrives can pass {best['ratio']:.3f} of the minimal view's rate here; this one costs "
          f"{best['stage_ms']:.2f} ms, with {best['idle_share']:.0%} of the CPUs idle, waiting")
    print(f"  stage upserts: {chosen['api_rps']:,.0f} req/s; minimal view: {chosen['minimal_rps']:,.0f} req/s")
    lines = [
        bench_line("callbacks_stages_lost_or_duplicated", wrong, 0, intact),
        bench_line("callbacks_errors", chosen["errors"], 0, chosen["errors"] == 0),
        bench_line("callbacks_vs_minimal_view", ratio, TARGET_RATIO, ratio >= TARGET_RATIO),
    ]
    print("\n".join(lines))
    return 0 if all(line.endswith("ok=true") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
