"""Demo reports for the demo history (deliveries.demo): what the security, performance and attack pages show.

`seed_reports(project=..., runs=..., scale=...)` writes, for runs just created by seed_demo, the rows report
ingestion would have written (scanners.services), without raw files:

- a run whose "Trivy scan" stage succeeded gets two parsed Trivy reports (the app image and the nginx image).
  Findings come from a pool per project and image in which every build introduces a few and each finding lives
  a while (so every run fixes a few): deterministic from (project slug, image, build number) alone. Feature
  branches add a few findings of their own. Flags and summaries are computed exactly as `write_trivy` does:
  new/persisting/fixed against the previous scanned run of the branch, new_vs_production against the run
  production ran when the scan finished.
- a run whose "Gauntlt attacks" stage ran gets a Gauntlt report of 9 scenarios, some failed when the stage
  was unstable or failed.
- a run whose "Load test" stage ran gets a JMeter report: 5 labels and the total, 60 five-second buckets.

Everything is derived from random.Random seeded by the project slug and the build number. Rows go in with
portal.bulk.insert_rows. Runs that already have reports are left alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from deliveries.models import PipelineRun, Project, Stage, StageStatus
from environments.models import Deployment, DeploymentStatus, Tier
from portal.bulk import insert_rows
from scanners.models import (
    AttackScenario,
    Finding,
    FindingClass,
    LoadTestBucket,
    LoadTestStat,
    Report,
    ReportKind,
    ReportStatus,
    Severity,
)
from scanners.parsers.jmeter import PERCENTILE_DEFINITION
from scanners.parsers.trivy import fingerprint, mask_secret
from scanners.services import FINDING_COLUMNS, count_choices

TRIVY_STAGE = "Trivy scan"
GAUNTLT_STAGE = "Gauntlt attacks"
JMETER_STAGE = "Load test"
RAN = {StageStatus.SUCCESS, StageStatus.UNSTABLE, StageStatus.FAILED}
CHUNK_RUNS = 500
REGISTRY = "registry.gitlab.example.com"  # as deliveries.demo names the images


@dataclass(frozen=True)
class ImagePlan:
    name: str
    active: int  # findings present at any time, on average
    life: float  # builds a finding lives, on average (each build introduces active / life)


SCALES = {
    "normal": (ImagePlan("app", 70, 35.0), ImagePlan("nginx", 42, 30.0)),
    "large": (ImagePlan("app", 30, 54.0), ImagePlan("nginx", 29, 54.0)),
}


@dataclass
class SeedReportsResult:
    reports: int = 0
    findings: int = 0
    scenarios: int = 0
    load_stats: int = 0
    buckets: int = 0

    def add(self, other: SeedReportsResult) -> None:
        for name in ("reports", "findings", "scenarios", "load_stats", "buckets"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def seed_reports(*, project: Project, runs, scale: str = "normal") -> SeedReportsResult:
    """Write demo reports for `runs` (PipelineRun rows of `project`, saved, with their stages)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)}")
    runs = sorted((run for run in runs if run.pk), key=lambda run: (run.created_at, run.pk))
    if not runs:
        return SeedReportsResult()
    run_ids = [run.pk for run in runs]
    already = set()
    stages: dict[int, dict[str, tuple]] = defaultdict(dict)
    for chunk in _chunks(run_ids, 2000):
        already.update(Report.objects.filter(run_id__in=chunk).values_list("run_id", flat=True))
        for run_id, name, status, started_at, finished_at in Stage.objects.filter(
            run_id__in=chunk, name__in=[TRIVY_STAGE, GAUNTLT_STAGE, JMETER_STAGE]
        ).values_list("run_id", "name", "status", "started_at", "finished_at"):
            stages[run_id][name] = (status, started_at, finished_at)
    runs = [run for run in runs if run.pk not in already]
    seeder = _Seeder(project, SCALES[scale], runs, stages)
    result = SeedReportsResult()
    for chunk in _chunks(runs, CHUNK_RUNS):
        result.add(seeder.write(chunk))
    return result


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- Trivy: the pool of findings -------------------------------------------------------------------------------

OS_PACKAGES = {
    "app": ["openssl", "libcrypto3", "libssl3", "zlib", "busybox", "musl", "expat", "sqlite-libs", "ncurses-libs",
            "libxml2", "libcurl", "pcre2", "xz-libs", "krb5-libs"],
    "nginx": ["nginx", "openssl", "libcrypto3", "libssl3", "zlib", "pcre2", "curl", "libcurl", "libxml2", "libxslt",
              "libexpat", "musl", "busybox", "freetype", "libpng", "tiff", "libwebp"],
}
PYTHON_PACKAGES = ["Django", "urllib3", "requests", "cryptography", "Jinja2", "Pillow", "sqlparse", "gunicorn",
                   "setuptools", "pip", "certifi", "idna", "PyYAML", "Werkzeug", "aiohttp", "lxml"]
FLAWS = [
    "denial of service via crafted input", "heap-based buffer overflow", "use-after-free in the parser",
    "improper certificate validation", "HTTP request smuggling", "path traversal in archive extraction",
    "regular expression denial of service", "out-of-bounds read", "integer overflow when decoding",
    "information disclosure through error messages", "cross-site scripting in the admin",
    "NULL pointer dereference", "excessive memory consumption", "timing side channel",
]
VULNERABILITY_SEVERITIES = (["CRITICAL"] * 4 + ["HIGH"] * 18 + ["MEDIUM"] * 42 + ["LOW"] * 28 + ["UNKNOWN"] * 8)
MISCONFIGURATIONS = [
    ("DS002", "HIGH", "Image user should not be 'root'",
     "Specify at least 1 USER command in Dockerfile with non-root user as argument"),
    ("DS026", "LOW", "No HEALTHCHECK defined", "Add HEALTHCHECK instruction in your Dockerfile"),
    ("DS001", "MEDIUM", "':latest' tag used", "Specify a tag in the 'FROM' statement for image 'python'"),
    ("DS005", "LOW", "ADD instead of COPY", "Consider using 'COPY . /app' command instead of 'ADD . /app'"),
    ("DS013", "MEDIUM", "'RUN cd ...' to change directory", "RUN should not be used to change directory"),
]
SECRETS = [
    ("aws-access-key-id", "CRITICAL", "AWS Access Key ID", "AWS_ACCESS_KEY_ID=AKIA", "/app/config/settings_local.py"),
    ("github-pat", "CRITICAL", "GitHub Personal Access Token", "GITHUB_TOKEN=ghp_", "/app/.env.example"),
    ("slack-web-hook", "MEDIUM", "Slack Webhook", "SLACK_HOOK: https://hooks.slack.com/services/T0",
     "/app/deploy/notify.sh"),
    ("private-key", "HIGH", "Asymmetric Private Key", "-----BEGIN RSA PRIVATE KEY-----", "/app/certs/dev.key"),
]
LICENSES = [
    ("GPL-3.0-only", "HIGH", "restricted", "readline"), ("LGPL-2.1-only", "MEDIUM", "reciprocal", "chardet"),
    ("AGPL-3.0-only", "CRITICAL", "forbidden", "ghostscript"), ("MPL-2.0", "MEDIUM", "reciprocal", "certifi"),
    ("GPL-2.0-only", "HIGH", "restricted", "busybox"),
]


@dataclass(frozen=True, slots=True)
class PoolFinding:
    fingerprint: str
    finding_class: str
    identifier: str
    package: str
    installed_version: str
    fixed_version: str
    severity: str
    title: str
    detail: str
    url: str
    target: str  # "" for OS packages: their target names the image and its tag, set per run


def _version(rng: random.Random, os_package: bool) -> tuple[str, str]:
    major, minor, patch = rng.randint(0, 4), rng.randint(0, 30), rng.randint(0, 20)
    suffix = f"-r{rng.randint(0, 3)}" if os_package else ""
    fixed = f"{major}.{minor}.{patch + rng.randint(1, 3)}{suffix}" if rng.random() < 0.85 else ""
    return f"{major}.{minor}.{patch}{suffix}", fixed


def _pool_finding(rng: random.Random, image: str) -> PoolFinding:
    roll = rng.random()
    if image == "app" and roll < 0.03:
        rule, severity, title, prefix, path = rng.choice(SECRETS)
        match = prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
        match_hash = hashlib.sha256(match.encode()).hexdigest()
        return PoolFinding(fingerprint("secret", rule, path, match_hash), FindingClass.SECRET, rule, "", "", "",
                           severity, title, mask_secret(match), "", path)
    if roll < 0.07:
        rule, severity, title, message = rng.choice(MISCONFIGURATIONS)
        return PoolFinding(fingerprint("misconfiguration", rule, "Dockerfile", ""), FindingClass.MISCONFIGURATION,
                           rule, "", "", "", severity, title, message,
                           f"https://avd.aquasec.com/misconfig/{rule.lower()}", "Dockerfile")
    if roll < 0.12:
        name, severity, category, package = rng.choice(LICENSES)
        target = "OS Packages"
        return PoolFinding(fingerprint("license", name, package, target), FindingClass.LICENSE, name, package, "",
                           "", severity, f"{name} license in {package}", f"{category} (confidence 1)",
                           f"https://spdx.org/licenses/{name}.html", target)
    python = image == "app" and rng.random() < 0.45
    package = rng.choice(PYTHON_PACKAGES if python else OS_PACKAGES[image])
    installed, fixed = _version(rng, not python)
    cve = f"CVE-{rng.randint(2019, 2025)}-{rng.randint(1000, 52999)}"
    pkg_path = f"usr/local/lib/python3.12/site-packages/{package}-{installed}.dist-info/METADATA" if python else ""
    return PoolFinding(
        fingerprint("vulnerability", cve, package, pkg_path, installed), FindingClass.VULNERABILITY, cve, package,
        installed, fixed, rng.choice(VULNERABILITY_SEVERITIES), f"{package}: {rng.choice(FLAWS)}", "",
        f"https://avd.aquasec.com/nvd/{cve.lower()}", "Python" if python else "",
    )


class _Pool:
    """The findings of one image of a project, each alive from the build that introduced it for a while."""

    def __init__(self, slug: str, plan: ImagePlan, last_build: int):
        rate = plan.active / plan.life
        self.born: dict[int, list[tuple[PoolFinding, int]]] = defaultdict(list)
        seen: set[str] = set()
        for build in range(0, last_build + 1):
            rng = random.Random(f"{slug}:{plan.name}:{build}")
            count = plan.active if build == 0 else sum(rng.random() < rate / 4 for _ in range(4))
            for _ in range(count):
                item = _pool_finding(rng, plan.name)
                life = 1 + min(int(rng.expovariate(1 / plan.life)), int(plan.life * 5))
                if item.fingerprint not in seen:
                    seen.add(item.fingerprint)
                    self.born[build].append((item, build + life))

    def active_at(self, builds: list[int]) -> dict[int, tuple[PoolFinding, ...]]:
        """The findings alive at each of the builds, in one sweep."""
        alive: dict[str, tuple[PoolFinding, int]] = {}
        result, swept = {}, -1
        for build in sorted(set(builds)):
            for born in range(swept + 1, build + 1):
                for item, dies in self.born.get(born, ()):
                    alive[item.fingerprint] = (item, dies)
            swept = build
            for ended in [fp for fp, (_, dies) in alive.items() if dies <= build]:
                del alive[ended]
            result[build] = tuple(item for item, _ in alive.values())
        return result


def _branch_extras(slug: str, branch: str, image: str) -> tuple[PoolFinding, ...]:
    """Findings a feature branch brings with it (a new dependency, say)."""
    rng = random.Random(f"{slug}:{branch}:{image}")
    return tuple(_pool_finding(rng, image) for _ in range(rng.randint(1, 3)))


# --- Gauntlt and JMeter content ---------------------------------------------------------------------------------

ATTACKS = [
    # feature, scenario, the step that fails, its message, typical ms, weight of failing
    ("Look for open ports with nmap", "Verify only ports 80 and 443 are open",
     'Then the output should not contain "23/tcp open"', 'expected "22/tcp open ssh\n23/tcp open telnet" not to '
     'contain "23/tcp open"', 14000, 1),
    ("Look for open ports with nmap", "Verify the database port is not reachable",
     'Then the output should not contain "5432/tcp open"', 'found "5432/tcp open postgresql"', 9000, 1),
    ("Run sslyze against the TLS endpoint", "Verify TLS 1.0 and 1.1 are disabled",
     'Then the output should contain "TLS 1.1 cipher suites: rejected"', "TLSv1.1 accepted: ECDHE-RSA-AES128-SHA",
     4500, 2),
    ("Run sslyze against the TLS endpoint", "Verify the certificate chain is trusted",
     'Then the output should contain "Certificate is trusted"', "unable to get local issuer certificate", 3800, 1),
    ("Run sqlmap against the search form", "Verify the q parameter is not injectable",
     'Then the output should not contain "is vulnerable"', "GET parameter 'q' is vulnerable (boolean-based blind)",
     42000, 1),
    ("Look for cross site scripting with arachni", "Verify the product page is not vulnerable to XSS",
     'Then the output should not contain "Cross-Site Scripting"', "[~] Cross-Site Scripting (XSS) in /products?q=",
     65000, 2),
    ("Check security headers with curl", "Verify Strict-Transport-Security is set",
     'Then the output should contain "Strict-Transport-Security"', "header missing from HTTP/1.1 200 OK", 400, 2),
    ("Check security headers with curl", "Verify Content-Security-Policy is set",
     'Then the output should contain "Content-Security-Policy"', "header missing from HTTP/1.1 200 OK", 350, 4),
    ("Check security headers with curl", "Verify the server banner hides the nginx version",
     'Then the output should not contain "Server: nginx/"', 'found "Server: nginx/1.25.3"', 300, 4),
]
ATTACK_FEATURES = len({attack[0] for attack in ATTACKS})

LOAD_LABELS = [  # label, mean ms, share of the samples
    ("GET /", 48.0, 0.32),
    ("GET /products", 125.0, 0.26),
    ("GET /products/{id}", 84.0, 0.22),
    ("POST /cart", 152.0, 0.12),
    ("POST /checkout", 318.0, 0.08),
]
LOAD_BUCKETS = 60
BUCKET_SECONDS = 5
LOAD_SECONDS = LOAD_BUCKETS * BUCKET_SECONDS


# --- the writer -------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    reports: list[Report] = field(default_factory=list)
    findings: list[tuple[int, list[tuple]]] = field(default_factory=list)  # (report index, rows without ids)
    scenarios: list[tuple[int, list[tuple]]] = field(default_factory=list)
    stats: list[tuple[int, list[tuple]]] = field(default_factory=list)
    buckets: list[tuple[int, list[tuple]]] = field(default_factory=list)


class _Seeder:
    def __init__(self, project: Project, plans: tuple[ImagePlan, ...], runs: list[PipelineRun], stages):
        self.project = project
        self.stages = stages
        self.slug = project.slug
        self.artifacts = {plan.name: f"{REGISTRY}/{project.gitlab_project_path or project.slug}/{plan.name}"
                          for plan in plans}
        scanned = [run for run in runs if self._stage(run, TRIVY_STAGE, {StageStatus.SUCCESS})]
        builds = [self._build(run) for run in scanned]
        self.active: dict[str, dict[int, tuple[PoolFinding, ...]]] = {}
        for plan in plans:
            pool = _Pool(self.slug, plan, max(builds, default=0))
            self.active[plan.name] = pool.active_at(builds)
        # run id -> {artifact name: fingerprints}, for the runs seeded here; others are read when needed
        self.fingerprints: dict[int, dict[str, set[str]]] = {}
        self.scanned_before = self._scanned_runs_by_branch()
        self.production = self._production_timeline()

    # stages and history

    def _stage(self, run, name: str, statuses) -> tuple | None:
        stage = self.stages.get(run.pk, {}).get(name)
        return stage if stage and stage[0] in statuses else None

    @staticmethod
    def _build(run) -> int:
        return run.build_number if run.build_number is not None else run.pk

    def _scanned_runs_by_branch(self) -> dict[str, list[tuple]]:
        """(created_at, id) of the project's runs that already have a parsed Trivy report, per branch."""
        timeline = defaultdict(list)
        rows = (
            Report.objects.filter(run__project=self.project, kind=ReportKind.TRIVY, status=ReportStatus.PARSED)
            .values_list("run__branch", "run__created_at", "run_id")
            .distinct()
        )
        for branch, created_at, run_id in rows:
            timeline[branch].append((created_at, run_id))
        for entries in timeline.values():
            entries.sort()
        return timeline

    def _production_timeline(self) -> list[tuple[datetime, int]]:
        """(finished_at, source run id) of the project's successful production deployments, oldest first."""
        rows = (
            Deployment.objects.filter(
                project=self.project, environment__tier=Tier.PRODUCTION, status=DeploymentStatus.SUCCESS
            )
            .exclude(source_run=None)
            .exclude(finished_at=None)
            .order_by("finished_at", "id")
            .values_list("finished_at", "source_run_id")
        )
        return list(rows)

    def _previous_scanned(self, run) -> int | None:
        entries = self.scanned_before[run.branch]
        position = bisect_left(entries, (run.created_at, -1))
        return entries[position - 1][1] if position else None

    def _production_run(self, run, moment: datetime) -> int | None:
        position = bisect_left(self.production, (moment, -1))
        if not position:
            return None
        source_run_id = self.production[position - 1][1]
        return None if source_run_id == run.pk else source_run_id

    def _fingerprints_of(self, run_id: int) -> dict[str, set[str]]:
        if run_id not in self.fingerprints:
            by_artifact = defaultdict(set)
            for artifact_name, fingerprint in Finding.objects.filter(run_id=run_id).values_list(
                "artifact_name", "fingerprint"
            ):
                by_artifact[artifact_name].add(fingerprint)
            self.fingerprints[run_id] = dict(by_artifact)
        return self.fingerprints[run_id]

    # one chunk of runs

    def write(self, runs: list[PipelineRun]) -> SeedReportsResult:
        pending = _Pending()
        for run in runs:
            trivy = self._stage(run, TRIVY_STAGE, {StageStatus.SUCCESS})
            if trivy:
                self._trivy(run, trivy, pending)
            gauntlt = self._stage(run, GAUNTLT_STAGE, RAN)
            if gauntlt:
                self._gauntlt(run, gauntlt, pending)
            jmeter = self._stage(run, JMETER_STAGE, RAN)
            if jmeter:
                self._jmeter(run, jmeter, pending)
        Report.objects.bulk_create(pending.reports, batch_size=1000)
        ids = [report.pk for report in pending.reports]
        if None in ids:  # a database that does not return ids from bulk inserts
            by_sha = dict(Report.objects.filter(run_id__in={r.run_id for r in pending.reports}).values_list(
                "sha256", "id"))
            ids = [by_sha[report.sha256] for report in pending.reports]
        result = SeedReportsResult(reports=len(ids))
        result.findings = self._insert(Finding, FINDING_COLUMNS, pending.findings, ids)
        result.scenarios = self._insert(AttackScenario, SCENARIO_COLUMNS, pending.scenarios, ids)
        result.load_stats = self._insert(LoadTestStat, STAT_COLUMNS, pending.stats, ids)
        result.buckets = self._insert(LoadTestBucket, BUCKET_COLUMNS, pending.buckets, ids)
        return result

    @staticmethod
    def _insert(model, columns, groups, ids) -> int:
        rows = [(ids[index], *row) for index, group in groups for row in group]
        if rows:
            insert_rows(model, columns, rows)
        return len(rows)

    def _report(self, run, pending: _Pending, *, kind: str, name: str, summary: dict, at: datetime, size: int) -> int:
        digest = hashlib.sha256(f"demo:{self.slug}:{self._build(run)}:{name}".encode()).hexdigest()
        pending.reports.append(
            Report(run_id=run.pk, kind=kind, file="", original_name=name, size_bytes=size, sha256=digest,
                   status=ReportStatus.PARSED, summary=summary, created_at=at, parsed_at=at + timedelta(seconds=2))
        )
        return len(pending.reports) - 1

    # Trivy

    def _trivy(self, run, stage: tuple, pending: _Pending) -> None:
        _, started_at, finished_at = stage
        moment = finished_at or started_at or run.created_at
        previous_id = self._previous_scanned(run)
        previous = self._fingerprints_of(previous_id) if previous_id else {}
        previous_all = set().union(*previous.values()) if previous else set()
        production_id = self._production_run(run, moment)
        in_production = None
        if production_id is not None:
            in_production = set().union(set(), *self._fingerprints_of(production_id).values())
        tag = (run.commit_sha or f"{self._build(run):08d}")[:8]
        mine: dict[str, set[str]] = {}
        for image, artifact_name in self.artifacts.items():
            items = self.active[image].get(self._build(run), ())
            if run.branch not in (self.project.dev_branch, self.project.release_branch) and image == "app":
                extras = _branch_extras(self.slug, run.branch, image)
                known = {item.fingerprint for item in items}
                items = items + tuple(item for item in extras if item.fingerprint not in known)
            os_target = f"{artifact_name}:{tag} (alpine 3.19.1)"
            rows, new_flags, new_vs_production = [], [], []
            for item in items:
                is_new = item.fingerprint not in previous_all
                vs_production = None if in_production is None else item.fingerprint not in in_production
                new_flags.append(is_new)
                new_vs_production.append(vs_production)
                rows.append((run.pk, artifact_name, item.target or os_target, item.finding_class, item.fingerprint,
                             item.identifier, item.package, item.installed_version, item.fixed_version, item.severity,
                             item.title, item.detail, item.url, is_new, vs_production))
            current = {item.fingerprint for item in items}
            mine[artifact_name] = current
            fixed_basis = previous.get(artifact_name, set())
            summary = {
                "format": "schema2",
                "artifact_name": artifact_name,
                "findings": len(items),
                "by_severity": count_choices(Severity.values, (item.severity for item in items)),
                "by_class": count_choices(FindingClass.values, (item.finding_class for item in items)),
                "new": sum(new_flags),
                "persisting": len(new_flags) - sum(new_flags),
                "fixed": len((fixed_basis or previous_all) - current) if previous_id else 0,
                "new_vs_production": None if in_production is None else sum(bool(v) for v in new_vs_production),
                "compared_with_run": previous_id,
                "production_run": production_id,
            }
            index = self._report(run, pending, kind=ReportKind.TRIVY, name=f"trivy-{image}.json", summary=summary,
                                 at=moment, size=2_000 + 900 * len(items))
            pending.findings.append((index, rows))
        self.fingerprints[run.pk] = mine
        entries = self.scanned_before[run.branch]
        entries.insert(bisect_left(entries, (run.created_at, run.pk)), (run.created_at, run.pk))

    # Gauntlt

    def _gauntlt(self, run, stage: tuple, pending: _Pending) -> None:
        status, started_at, finished_at = stage
        rng = random.Random(f"{self.slug}:{self._build(run)}:gauntlt")
        failing: set[int] = set()
        if status != StageStatus.SUCCESS:
            count = 2 if status == StageStatus.UNSTABLE else rng.randint(1, 3)
            weights = [attack[5] for attack in ATTACKS]
            while len(failing) < count:
                failing.add(rng.choices(range(len(ATTACKS)), weights)[0])
        undecided = rng.randrange(len(ATTACKS)) if status == StageStatus.FAILED and rng.random() < 0.4 else None
        rows, counts = [], {"passed": 0, "failed": 0, "other": 0}
        for number, (feature, name, step, message, typical_ms, _) in enumerate(ATTACKS):
            if number in failing:
                outcome = "failed"
            elif number == undecided:
                outcome = "undefined"
            else:
                outcome = "passed"
            counts[outcome if outcome in counts else "other"] += 1
            line = 4 + number * 6
            tool = feature.split(" with ")[-1].split(" against ")[0].replace("Run ", "")
            durations = [round(rng.uniform(20, 80), 1), round(typical_ms * rng.uniform(0.7, 1.4), 1), 0.0]
            last_status = outcome if outcome != "undefined" else "undefined"
            steps = [
                {"keyword": "Given", "name": f'"{tool}" is installed', "line": line, "status": "passed",
                 "duration_ms": durations[0], "error_message": ""},
                {"keyword": "When", "name": f'I launch a "{tool}" attack', "line": line + 1, "status": "passed",
                 "duration_ms": durations[1], "error_message": ""},
                {"keyword": step.split(" ", 1)[0], "name": step.split(" ", 1)[1], "line": line + 2,
                 "status": last_status, "duration_ms": None if outcome == "undefined" else round(rng.uniform(1, 9), 1),
                 "error_message": message if outcome == "failed" else ""},
            ]
            duration = sum(s["duration_ms"] for s in steps if s["duration_ms"] is not None)
            failing_step = step if outcome in ("failed", "undefined") else ""
            failure_message = (
                f"{message} (RSpec::Expectations::ExpectationNotMetError)\n"
                f"./features/step_definitions/{tool}_steps.rb:{rng.randint(8, 60)}"
                if outcome == "failed" else ""
            )
            rows.append((run.pk, feature, name, line, outcome, round(duration, 1), failing_step, failure_message,
                         _json(steps), _json(["@slow"] if typical_ms > 30_000 else [])))
        summary = {"features": ATTACK_FEATURES, "scenarios": len(ATTACKS), **counts}
        index = self._report(run, pending, kind=ReportKind.GAUNTLT, name="gauntlt.json", summary=summary,
                             at=finished_at or started_at or run.created_at, size=18_000 + rng.randint(0, 4000))
        pending.scenarios.append((index, rows))

    # JMeter

    def _jmeter(self, run, stage: tuple, pending: _Pending) -> None:
        status, started_at, finished_at = stage
        build = self._build(run)
        rng = random.Random(f"{self.slug}:{build}:jmeter")
        started_at = started_at or run.created_at
        # slow drift across builds, noise per run, and a bad checkout when the stage failed
        drift = 1 + 0.15 * math.sin(build / 9) + 0.08 * math.sin(build / 41)
        failed = status == StageStatus.FAILED
        total_samples = rng.randint(15_000, 19_000)
        stats, summaries = [], {}
        for label, mean_ms, share in LOAD_LABELS:
            factor = drift * rng.uniform(0.9, 1.1) * (3.4 if failed and label == "POST /checkout" else 1)
            mean = mean_ms * factor
            samples = int(total_samples * share * rng.uniform(0.95, 1.05))
            error_rate = rng.uniform(0.0, 0.004) + (rng.uniform(0.02, 0.05) if failed and "checkout" in label else 0)
            errors = int(samples * error_rate)
            stats.append(_stat(label, samples, errors, mean, rng))
        total = _total(stats)
        for stat in stats:
            summaries[stat["label"]] = _label_summary(stat)
        finished = started_at + timedelta(seconds=LOAD_SECONDS)
        summary = {
            "format": "csv",
            "samples": total["samples"],
            "errors": total["errors"],
            "labels": summaries,
            "total": _label_summary(total),
            "percentile_definition": PERCENTILE_DEFINITION,
            "started_at": started_at.isoformat(),
            "finished_at": finished.isoformat(),
        }
        index = self._report(run, pending, kind=ReportKind.JMETER, name="jmeter.jtl", summary=summary,
                             at=finished_at or finished, size=total["samples"] * 118)
        pending.stats.append((index, [_stat_row(run, stat, is_total=False) for stat in stats]
                              + [_stat_row(run, total, is_total=True)]))
        pending.buckets.append((index, _buckets(total, started_at, rng, failed)))


def _stat(label: str, samples: int, errors: int, mean: float, rng: random.Random) -> dict:
    spread = rng.uniform(0.9, 1.15)
    return {
        "label": label,
        "samples": samples,
        "errors": errors,
        "mean_ms": round(mean, 1),
        "min_ms": round(mean * 0.22, 1),
        "max_ms": round(mean * 6.5 * spread, 1),
        "stdev_ms": round(mean * 0.55 * spread, 1),
        "p50_ms": round(mean * 0.86, 1),
        "p90_ms": round(mean * 1.55 * spread, 1),
        "p95_ms": round(mean * 1.95 * spread, 1),
        "p99_ms": round(mean * 3.1 * spread, 1),
        "throughput": round(samples / LOAD_SECONDS, 2),
        "received_kbps": round(samples / LOAD_SECONDS * rng.uniform(4, 18), 2),
        "sent_kbps": round(samples / LOAD_SECONDS * 0.45, 2),
    }


def _total(stats: list[dict]) -> dict:
    samples = sum(stat["samples"] for stat in stats)

    def weighted(name: str, boost: float = 1.0) -> float:
        return round(sum(stat[name] * stat["samples"] for stat in stats) / samples * boost, 1)

    return {
        "label": "Total",
        "samples": samples,
        "errors": sum(stat["errors"] for stat in stats),
        "mean_ms": weighted("mean_ms"),
        "min_ms": min(stat["min_ms"] for stat in stats),
        "max_ms": max(stat["max_ms"] for stat in stats),
        "stdev_ms": weighted("stdev_ms", 1.3),
        "p50_ms": weighted("p50_ms", 0.9),
        "p90_ms": weighted("p90_ms", 1.1),
        "p95_ms": weighted("p95_ms", 1.15),
        "p99_ms": weighted("p99_ms", 1.2),
        "throughput": round(sum(stat["throughput"] for stat in stats), 2),
        "received_kbps": round(sum(stat["received_kbps"] for stat in stats), 2),
        "sent_kbps": round(sum(stat["sent_kbps"] for stat in stats), 2),
    }


def _label_summary(stat: dict) -> dict:
    return {"samples": stat["samples"], "errors": stat["errors"], "mean": stat["mean_ms"], "p50": stat["p50_ms"],
            "p90": stat["p90_ms"], "p95": stat["p95_ms"], "p99": stat["p99_ms"], "throughput": stat["throughput"]}


STAT_COLUMNS = [
    "report_id", "run_id", "label", "is_total", "samples", "errors", "error_percent", "min_ms", "max_ms", "mean_ms",
    "stdev_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "throughput", "received_kbps", "sent_kbps",
]
BUCKET_COLUMNS = ["report_id", "started_at", "width_seconds", "samples", "errors", "mean_ms", "p95_ms",
                  "active_threads"]
SCENARIO_COLUMNS = ["report_id", "run_id", "feature", "name", "line", "status", "duration_ms", "failing_step",
                    "failure_message", "steps", "tags"]


def _stat_row(run, stat: dict, *, is_total: bool) -> tuple:
    error_percent = round(stat["errors"] / stat["samples"] * 100, 3) if stat["samples"] else 0.0
    return (run.pk, stat["label"], is_total, stat["samples"], stat["errors"], error_percent, stat["min_ms"],
            stat["max_ms"], stat["mean_ms"], stat["stdev_ms"], stat["p50_ms"], stat["p90_ms"], stat["p95_ms"],
            stat["p99_ms"], stat["throughput"], stat["received_kbps"], stat["sent_kbps"])


def _buckets(total: dict, started_at: datetime, rng: random.Random, failed: bool) -> list[tuple]:
    """LOAD_BUCKETS slices: threads ramp up over the first minute; their samples add up to the total."""
    threads = [min(50, 5 * (index + 1)) for index in range(LOAD_BUCKETS)]
    weights = [count * rng.uniform(0.9, 1.1) for count in threads]
    scale = total["samples"] / sum(weights)
    samples = [int(weight * scale) for weight in weights]
    samples[-1] += total["samples"] - sum(samples)
    errors_left = total["errors"]
    rows = []
    adapt = connection.ops.adapt_datetimefield_value
    for index, (count, active) in enumerate(zip(samples, threads, strict=True)):
        errors = min(errors_left, round(total["errors"] * count / total["samples"])) if total["samples"] else 0
        if index == LOAD_BUCKETS - 1:
            errors = errors_left
        errors_left -= errors
        load = 0.75 + 0.25 * active / 50 + (0.6 if failed and index > 40 else 0)
        mean = total["mean_ms"] * load * rng.uniform(0.92, 1.08)
        rows.append((adapt(started_at + timedelta(seconds=index * BUCKET_SECONDS)), BUCKET_SECONDS, count, errors,
                     round(mean, 1), round(mean * rng.uniform(1.8, 2.2), 1), active))
    return rows


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))
