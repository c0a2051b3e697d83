"""Server time of the portal's pages on a large history: `seed_demo --scale large` (10,000 runs, ~500,000 findings).

Each page is requested through Django's test client in this process (no network), signed in as a developer,
a few times after a warm-up; the median is compared with the 50 ms target. The admin changelist of runs is
measured alongside as a baseline: a stock Django page over the same table.

The seeded database is kept between runs (var/bench/pages.sqlite3, or the PostgreSQL database
portal_bench_pages) because seeding takes minutes; --reseed starts afresh.

    .venv/bin/python benchmarks/pages.py [--database postgres://postgres@127.0.0.1:5432/portal_bench_pages]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line  # noqa: E402

TARGET_MS = 50.0
REPEAT = 15


def configure(database_url: str, reseed: bool) -> None:
    if not database_url:
        path = REPO_ROOT / "var" / "bench" / "pages.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        if reseed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{path}"
    elif reseed:
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    if database_url.startswith("postgres"):
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.test_settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def seed() -> None:
    from django.core.management import call_command

    from deliveries.models import PipelineRun

    call_command("migrate", verbosity=0)
    if PipelineRun.objects.count() < 10_000:
        started = time.perf_counter()
        call_command("seed_demo", scale="large")
        print(f"seeded the large history in {time.perf_counter() - started:.0f} s")


def pages() -> dict[str, str]:
    """The pages to time: one of each kind, on the largest project."""
    from django.db.models import Count
    from django.urls import NoReverseMatch, reverse

    from deliveries.models import PipelineRun, Project

    project = Project.objects.annotate(n=Count("runs")).order_by("-n").first()
    run = PipelineRun.objects.filter(project=project, findings__isnull=False).order_by("-created_at").first() or \
        PipelineRun.objects.filter(project=project).order_by("-created_at").first()
    candidates = {
        "home": ("home", []),
        "project": ("project-detail", [project.slug]),
        "run": ("run-detail", [project.slug, run.pk]),
        "run_security": ("run-security", [project.slug, run.pk]),
        "project_security": ("project-security", [project.slug]),
        "run_performance": ("run-performance", [project.slug, run.pk]),
        "run_attacks": ("run-attacks", [project.slug, run.pk]),
        "project_attacks": ("project-attacks", [project.slug]),
        "project_performance": ("project-performance", [project.slug]),
        "dora": ("project-dora", [project.slug]),
    }
    urls = {}
    for name, (url_name, args) in candidates.items():
        try:
            urls[name] = reverse(url_name, args=args)
        except NoReverseMatch:
            print(f"(no page named {url_name} yet: skipped)")
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
    response = client.get(url)  # warm-up (and status check)
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), response.status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="PostgreSQL URL (default: a SQLite file under var/bench)")
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    configure(args.database, args.reseed)
    seed()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from deliveries.models import PipelineRun
    from scanners.models import Finding

    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True,
                                                                                        "is_superuser": True})
    client = Client()
    client.force_login(user)
    print(f"{connection.vendor}: {PipelineRun.objects.count():,} runs, {Finding.objects.count():,} findings")
    baseline, status = median_ms(client, "/admin/deliveries/pipelinerun/")
    print(f"  {'admin runs changelist (baseline)':36} {baseline:7.1f} ms  (HTTP {status})")
    results, ok = {}, True
    for name, url in pages().items():
        value, status = median_ms(client, url)
        results[name] = value
        ok &= status == 200
        print(f"  {name:36} {value:7.1f} ms  (HTTP {status}, {value / baseline:.2f}x the admin)  {url}")
    worst = max(results.values())
    overall = statistics.median(results.values())
    lines = [bench_line(f"page_{name}_ms", value, TARGET_MS, value <= TARGET_MS and ok) for name, value in
             results.items()]
    lines.append(bench_line("pages_median_ms", overall, TARGET_MS, overall <= TARGET_MS and ok))
    print(f"slowest page {worst:.1f} ms; median over pages {overall:.1f} ms")
    print("\n".join(lines))
    return 0 if ok and all(value <= TARGET_MS for value in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
