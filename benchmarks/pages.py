"""Pages that do not slow down as the history grows: server time of every page kind at two scales, on SQLite and
PostgreSQL, in one run.

- large: `seed_demo --scale large`, 10,000 runs over 60 days, ~500,000 findings;
- huge: `seed_demo --scale huge`, ~100,000 runs over two years, ~5 million findings.

Each (database, scale) is measured in a process of its own (Django sets one database up per process): every
page through Django's test client (no network), signed in as a superuser, REPEAT times after a warm-up, on the
largest project; the median counts. The admin changelist of runs is measured as a page like the others. With
--rounds N the (database, scale) processes run N times, interleaved (large, huge, large, huge...), and each page's
figure is the median of its N medians, so that a burst of load on a shared machine moves both scales alike.

Each scale is seeded into a database of its own (var/bench/pages-<scale>.sqlite3, or the PostgreSQL database
portal_bench_pages_<scale>), and a marker file var/bench/pages-<database>-<scale>.seeded records that its seed
finished (and how long it took). With --reuse a marked database is measured as it is, so a rerun takes minutes;
without it, every database is dropped and seeded again.

Seeding PostgreSQL through the ORM is slow here (about 8 runs a second at the large scale, so hours at the huge
one): with --postgres-from-sqlite its database of each scale is loaded instead from SQLite's seeded one, the same
rows copied table by table (COPY), so both databases are measured on the same history.

Targets, printed as BENCH lines: for every page, huge ÷ large ≤ GROWTH_TARGET (DORA over its fixed 30-day
window), and every page at the huge scale within the per-page bound of TARGET_MS (with one scale, `--scales
large`, every page of that scale within the bound).

    .venv/bin/python benchmarks/pages.py [--reuse] [--databases sqlite,postgres] [--scales large,huge]
        [--postgres postgres://postgres@127.0.0.1:5432] [--postgres-from-sqlite] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line  # noqa: E402

TARGET_MS = 50.0
GROWTH_TARGET = 1.3
REPEAT = 15
BENCH_DIR = REPO_ROOT / "var" / "bench"


def marker(database: str, scale: str) -> Path:
    return BENCH_DIR / f"pages-{database}-{scale}.seeded"


def database_url(database: str, scale: str, postgres: str) -> str:
    if database == "sqlite":
        return f"sqlite:///{BENCH_DIR / f'pages-{scale}.sqlite3'}"
    return f"{postgres.rstrip('/')}/portal_bench_pages_{scale}"


def drop(database: str, scale: str, postgres: str) -> None:
    marker(database, scale).unlink(missing_ok=True)
    if database == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{BENCH_DIR / f'pages-{scale}.sqlite3'}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(f"{postgres.rstrip('/')}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "portal_bench_pages_{scale}"')
        admin.execute(f'CREATE DATABASE "portal_bench_pages_{scale}"')


# --- the child: one database at one scale ------------------------------------------------------------------------

def seed(database: str, scale: str, *, from_sqlite: bool = False) -> float | None:
    """Seed (or load from SQLite) unless the marker says it is done; the seconds it took (None when reused)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    done = marker(database, scale)
    if done.exists():
        return None
    started = time.perf_counter()
    if from_sqlite:
        load_from_sqlite(scale)
    else:
        call_command("seed_demo", scale=scale, verbosity=0)
    seconds = time.perf_counter() - started
    if database == "postgres":
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    done.write_text(json.dumps({"seed_seconds": seconds}))
    return seconds


def load_from_sqlite(scale: str) -> None:
    """Fill this (migrated, PostgreSQL) database with the rows of SQLite's seeded database of the same scale: every
    table emptied, then copied column by column with COPY, foreign keys checked by neither side (the rows were
    consistent where they come from), then the id sequences moved past the copied ids."""
    import sqlite3

    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection, transaction

    if not marker("sqlite", scale).exists():
        raise SystemExit(f"--postgres-from-sqlite: SQLite's {scale} database is not seeded yet")
    source = sqlite3.connect(BENCH_DIR / f"pages-{scale}.sqlite3")
    with transaction.atomic(), connection.cursor() as cursor:
        tables = [table for table in connection.introspection.table_names(cursor) if table != "django_migrations"]
        cursor.execute("SET LOCAL session_replication_role = replica")  # no foreign-key triggers while copying
        cursor.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in tables))
        for table in tables:
            columns = ", ".join(f'"{column.name}"'
                                for column in connection.introspection.get_table_description(cursor, table))
            # SQLite's text dates, 0/1 booleans and JSON text are what PostgreSQL's COPY reads as they are
            with cursor.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
                for row in source.execute(f'SELECT {columns} FROM "{table}"'):  # noqa: S608 - the catalogue's names
                    copy.write_row(row)
        for statement in connection.ops.sequence_reset_sql(no_style(), apps.get_models(include_auto_created=True)):
            cursor.execute(statement)
    source.close()


def pages() -> dict[str, str]:
    """The pages to time: one of each kind, on the largest project."""
    from django.db.models import Count
    from django.urls import NoReverseMatch, reverse

    from deliveries.models import PipelineRun, Project, Promotion

    project = Project.objects.annotate(n=Count("runs")).order_by("-n").first()
    run = PipelineRun.objects.filter(project=project, reports__isnull=False).order_by("-created_at").first() or \
        PipelineRun.objects.filter(project=project).order_by("-created_at").first()
    promotion = Promotion.objects.filter(project=project).order_by("-created_at").first()
    candidates = {
        "admin_runs": ("admin:deliveries_pipelinerun_changelist", []),
        "home": ("home", []),
        "project": ("project-detail", [project.slug]),
        "run": ("run-detail", [project.slug, run.pk]),
        "run_security": ("run-security", [project.slug, run.pk]),
        "project_security": ("project-security", [project.slug]),
        "run_performance": ("run-performance", [project.slug, run.pk]),
        "project_performance": ("project-performance", [project.slug]),
        "run_attacks": ("run-attacks", [project.slug, run.pk]),
        "project_attacks": ("project-attacks", [project.slug]),
        "dora": ("project-dora", [project.slug]),  # its fixed window: the last 30 days
        "environments": ("environment-list", []),
        "environment": ("environment-detail", ["production"]),
        "promotions": ("promotion-list", [project.slug]),
    }
    if promotion:
        candidates["promotion"] = ("promotion-detail", [project.slug, promotion.pk])
    urls = {}
    for name, (url_name, args) in candidates.items():
        try:
            urls[name] = reverse(url_name, args=args)
        except NoReverseMatch:
            print(f"(no page named {url_name} yet: skipped)", file=sys.stderr)
    report = run.reports.first()
    if report:
        urls["report"] = reverse("report-detail", args=[report.pk])
    urls["promotions"] = reverse("promotion-list", args=[project.slug])
    urls["audit"] = reverse("project-audit", args=[project.slug])
    promotion = project.promotions.order_by("-created_at").first()
    if promotion is not None:
        urls["promotion"] = reverse("promotion-detail", args=[project.slug, promotion.pk])
        urls["evidence"] = reverse("promotion-evidence", args=[project.slug, promotion.pk])
        urls["evidence_json"] = urls["evidence"] + "?format=json"
    return urls


def median_ms(client, url: str) -> tuple[float, int]:
    status = client.get(url).status_code  # warm-up (and status check)
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), status


def measure(database: str, scale: str, url: str, *, from_sqlite: bool = False) -> None:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.test_settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    seconds = seed(database, scale, from_sqlite=from_sqlite)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from deliveries.models import PipelineRun
    from scanners.models import Finding

    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True,
                                                                                        "is_superuser": True})
    client = Client()
    client.force_login(user)
    result = {"runs": PipelineRun.objects.count(), "findings": Finding.objects.count(), "seed_seconds": seconds,
              "pages": {}, "status": {}}
    for name, page in pages().items():
        result["pages"][name], result["status"][name] = median_ms(client, page)
        print(f"  {database}/{scale} {name:22} {result['pages'][name]:7.1f} ms", file=sys.stderr)
    print(json.dumps(result))


# --- the parent: every database at every scale, then the comparison ----------------------------------------------

def child(database: str, scale: str, postgres: str, *, from_sqlite: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", f"{database}:{scale}", "--postgres", postgres]
    if from_sqlite:
        command.append("--postgres-from-sqlite")
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="measure a database its marker says is seeded")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--scales", default="large,huge")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="server URL, no name")
    parser.add_argument("--postgres-from-sqlite", action="store_true",
                        help="load PostgreSQL's databases from SQLite's seeded ones instead of seeding them")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each database and scale, interleaved")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        database, scale = args.child.split(":")
        from_sqlite = args.postgres_from_sqlite and database == "postgres"
        measure(database, scale, database_url(database, scale, args.postgres), from_sqlite=from_sqlite)
        return 0
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    databases, scales = args.databases.split(","), args.scales.split(",")
    rounds: dict[tuple[str, str], list[dict]] = {}
    for round_number in range(max(args.rounds, 1)):
        for database in databases:
            for scale in scales:
                if round_number == 0 and not (args.reuse and marker(database, scale).exists()):
                    drop(database, scale, args.postgres)
                from_sqlite = args.postgres_from_sqlite and database == "postgres"
                found = child(database, scale, args.postgres, from_sqlite=from_sqlite)
                rounds.setdefault((database, scale), []).append(found)
                if round_number == 0:
                    how = "loaded from SQLite" if from_sqlite else "seeded"
                    seeded = f", {how} in {found['seed_seconds']:.0f} s" if found["seed_seconds"] is not None else ""
                    print(f"{database} {scale}: {found['runs']:,} runs, {found['findings']:,} findings{seeded}")
    results = {key: {"pages": {name: statistics.median(found["pages"][name] for found in measured)
                               for name in measured[0]["pages"]},
                     "status": {name: max(found["status"][name] for found in measured)
                                for name in measured[0]["status"]}}
               for key, measured in rounds.items()}
    lines, ok = [], True
    for database in databases:
        for scale in scales:
            statuses = results[database, scale]["status"]
            bad = {name: status for name, status in statuses.items() if status != 200}
            if bad:
                print(f"{database} {scale}: pages not answered 200: {bad}")
                ok = False
        if len(scales) < 2:  # one scale: each page against the per-page bound
            (scale,) = scales
            print(f"\n{database}: {'page':22} {scale:>9}")
            for name, ms in results[database, scale]["pages"].items():
                print(f"{database}: {name:22} {ms:7.1f}ms")
                lines.append(bench_line(f"pages_{database}_{name}_{scale}_ms", ms, TARGET_MS, ms <= TARGET_MS))
                ok &= ms <= TARGET_MS
            continue
        small, big = (results[database, scale]["pages"] for scale in scales[:2])
        print(f"\n{database}: {'page':22} {scales[0]:>9} {scales[1]:>9}  growth")
        for name in small:
            growth = big[name] / small[name]
            print(f"{database}: {name:22} {small[name]:7.1f}ms {big[name]:7.1f}ms  {growth:.2f}x")
            page_ok = growth <= GROWTH_TARGET
            lines.append(bench_line(f"pages_{database}_{name}_growth", growth, GROWTH_TARGET, page_ok))
            bound_ok = big[name] <= TARGET_MS
            lines.append(bench_line(f"pages_{database}_{name}_{scales[1]}_ms", big[name], TARGET_MS, bound_ok))
            ok &= page_ok and bound_ok
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
