"""Demo reports for the demo history (deliveries.demo): what the security, performance and attack pages show.

`seed_reports(project=..., runs=..., scale=...)` writes, for runs just created by seed_demo, the report files
their pipeline would have uploaded, and ingests them through scanners.services like any upload: the pages
then show what the real rules (fingerprints, the comparison basis, the load-test statistics) make of them.

- A run whose "Trivy scan" stage succeeded uploads Trivy JSON of its two images (app and nginx). Findings come
  from a pool per project and image in which every build introduces a few and each finding lives a while (so
  every build fixes a few), deterministic from (project slug, image, build number) alone; a Python package is
  bumped now and then while still vulnerable. Feature branches add a few findings of their own.
- A run whose "Gauntlt attacks" stage ran uploads cucumber JSON of 9 scenarios, some failed when the stage
  was unstable or failed.
- A run whose "Load test" stage ran uploads a JMeter CSV: 5 labels over five minutes, threads ramping up.

Everything is derived from random.Random seeded by the project slug and the build number. Runs are ingested in
build order, as Jenkins would upload them. Runs that already have reports are left alone.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.core.files.base import ContentFile

from deliveries.models import PipelineRun, Project, Stage, StageStatus
from scanners import services
from scanners.models import Report, ReportKind, ReportStatus

TRIVY_STAGE = "Trivy scan"
GAUNTLT_STAGE = "Gauntlt attacks"
JMETER_STAGE = "Load test"
RAN = {StageStatus.SUCCESS, StageStatus.UNSTABLE, StageStatus.FAILED}
REGISTRY = "registry.gitlab.example.com"  # as deliveries.demo names the images
OS_RELEASE = "3.19.1"
SITE_PACKAGES = "usr/local/lib/python3.12/site-packages"


@dataclass(frozen=True)
class ImagePlan:
    name: str
    active: int  # findings present at any time, on average
    life: float  # builds a finding lives, on average (each build introduces active / life)


@dataclass(frozen=True)
class ScalePlan:
    images: tuple[ImagePlan, ...]
    load_samples: int  # JMeter samples per load test, about
    keep_files: bool  # store the raw files (uploads), or parse them from memory (services.ingest_content)


SCALES = {
    "normal": ScalePlan((ImagePlan("app", 70, 35.0), ImagePlan("nginx", 42, 30.0)), load_samples=1000,
                        keep_files=True),
    # 10,000 runs: 40,000 raw files would fill the disk for nothing, and storing them doubles the time
    "large": ScalePlan((ImagePlan("app", 30, 54.0), ImagePlan("nginx", 29, 54.0)), load_samples=200,
                       keep_files=False),
}
SCALES["huge"] = SCALES["large"]  # the same reports per run, ten times the runs


@dataclass
class SeedReportsResult:
    reports: int = 0
    findings: int = 0
    scenarios: int = 0
    samples: int = 0


def seed_reports(*, project: Project, runs, scale: str = "normal") -> SeedReportsResult:
    """Upload and ingest demo reports for `runs` (PipelineRun rows of `project`, saved, with their stages)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)}")
    plan = SCALES[scale]
    runs = sorted((run for run in runs if run.pk), key=_build_order)
    already = set()
    stages: dict[int, dict[str, tuple]] = defaultdict(dict)
    for start in range(0, len(runs), 2000):
        chunk = [run.pk for run in runs[start : start + 2000]]
        already.update(Report.objects.filter(run_id__in=chunk).values_list("run_id", flat=True))
        for run_id, name, status, started_at, finished_at in Stage.objects.filter(
            run_id__in=chunk, name__in=[TRIVY_STAGE, GAUNTLT_STAGE, JMETER_STAGE]
        ).values_list("run_id", "name", "status", "started_at", "finished_at"):
            stages[run_id][name] = (status, started_at, finished_at)
    runs = [run for run in runs if run.pk not in already]
    scanned = [run for run in runs if _stage(stages, run, TRIVY_STAGE, {StageStatus.SUCCESS})]
    images = _Images(project, plan.images, [_build(run) for run in scanned])
    result = SeedReportsResult()
    for run in runs:
        for kind, name, content, at in _files(project, run, stages, images, plan):
            if plan.keep_files:
                report = _upload(run, kind=kind, name=name, content=content, at=at)
            else:
                report = services.ingest_content(run=run, content=content, original_name=name, kind=kind,
                                                  received_at=at)
            if report.status != ReportStatus.PARSED:
                raise RuntimeError(f"the demo's {name} of {run} was refused: {report.error}")
            result.reports += 1
            result.findings += report.summary.get("findings", 0)
            result.scenarios += report.summary.get("scenarios", 0)
            result.samples += report.summary.get("samples", 0)
    return result


def _upload(run: PipelineRun, *, kind: str, name: str, content: bytes, at: datetime) -> Report:
    """One upload, through the same services as the API's, dated when the pipeline would have sent it."""
    report, _ = services.receive_report(run=run, file=ContentFile(content), original_name=name, kind=kind,
                                        queue=False)
    report = services.ingest_report(report_id=report.pk)
    Report.objects.filter(pk=report.pk).update(created_at=at, parsed_at=at + timedelta(seconds=2))
    return report


def _files(project: Project, run: PipelineRun, stages, images: _Images, plan: ScalePlan):
    """(kind, file name, content, upload time) of what the run's pipeline uploads."""
    trivy = _stage(stages, run, TRIVY_STAGE, {StageStatus.SUCCESS})
    if trivy:
        at = trivy[2] or trivy[1] or run.created_at
        for image in images.names:
            yield ReportKind.TRIVY, f"trivy-{image}.json", images.report(run, image, at), at
    gauntlt = _stage(stages, run, GAUNTLT_STAGE, RAN)
    if gauntlt:
        yield ReportKind.GAUNTLT, "gauntlt.json", _cucumber(project.slug, _build(run), gauntlt[0]), (
            gauntlt[2] or gauntlt[1] or run.created_at)
    jmeter = _stage(stages, run, JMETER_STAGE, RAN)
    if jmeter:
        started_at = jmeter[1] or run.created_at
        content = _jtl(project.slug, _build(run), jmeter[0], started_at, plan.load_samples)
        yield ReportKind.JMETER, "jmeter.jtl", content, jmeter[2] or started_at + timedelta(seconds=LOAD_SECONDS)


def _stage(stages, run, name: str, statuses) -> tuple | None:
    stage = stages.get(run.pk, {}).get(name)
    return stage if stage and stage[0] in statuses else None


def _build(run) -> int:
    return run.build_number if run.build_number is not None else run.pk


def _build_order(run) -> tuple:
    return (run.build_number is None, run.build_number or 0, run.pk)


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
    result: str  # the Trivy result it belongs to: "os", "python", "config", "license" or a secret's file
    key: tuple  # its identity in the pool
    entry: dict  # the Trivy JSON entry (a bumped Python package gets another InstalledVersion, see _entry)


def _version(rng: random.Random, os_package: bool) -> tuple[str, str]:
    major, minor, patch = rng.randint(0, 4), rng.randint(0, 30), rng.randint(0, 20)
    suffix = f"-r{rng.randint(0, 3)}" if os_package else ""
    fixed = f"{major}.{minor + 1}.0{suffix}" if rng.random() < 0.85 else ""
    return f"{major}.{minor}.{patch}{suffix}", fixed


def _pool_finding(rng: random.Random, image: str) -> PoolFinding:
    roll = rng.random()
    if image == "app" and roll < 0.03:
        rule, severity, title, prefix, path = rng.choice(SECRETS)
        match = prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
        line = rng.randint(2, 60)
        return PoolFinding(path, ("secret", rule, path, match), {
            "RuleID": rule, "Category": title.split(" ")[0], "Severity": severity, "Title": title,
            "StartLine": line, "EndLine": line, "Match": match})
    if roll < 0.07:
        rule, severity, title, message = rng.choice(MISCONFIGURATIONS)
        return PoolFinding("config", ("config", rule), {
            "Type": "Dockerfile Security Check", "ID": rule, "AVDID": f"AVD-DS-{rule[2:].zfill(4)}", "Title": title,
            "Message": message, "Severity": severity, "Status": "FAIL",
            "PrimaryURL": f"https://avd.aquasec.com/misconfig/{rule.lower()}"})
    if roll < 0.12:
        name, severity, category, package = rng.choice(LICENSES)
        return PoolFinding("license", ("license", name, package), {
            "Severity": severity, "Category": category, "PkgName": package, "Name": name, "Confidence": 1.0,
            "Link": f"https://spdx.org/licenses/{name}.html"})
    python = image == "app" and rng.random() < 0.45
    package = rng.choice(PYTHON_PACKAGES if python else OS_PACKAGES[image])
    installed, fixed = _version(rng, not python)
    cve = f"CVE-{rng.randint(2019, 2025)}-{rng.randint(1000, 52999)}"
    entry = {"VulnerabilityID": cve, "PkgName": package, "InstalledVersion": installed, "FixedVersion": fixed,
             "Severity": rng.choice(VULNERABILITY_SEVERITIES), "Title": f"{package}: {rng.choice(FLAWS)}",
             "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}"}
    return PoolFinding("python" if python else "os", ("vulnerability", cve, package, python), entry)


def _entry(item: PoolFinding, born: int, build: int) -> dict:
    """The finding's Trivy entry at `build`: a Python package is bumped (still vulnerable) every 20 builds."""
    if item.result != "python" or build - born < 20:
        return item.entry
    installed = item.entry["InstalledVersion"]
    major, minor, patch = installed.split(".")
    bumped = f"{major}.{minor}.{int(patch) + (build - born) // 20}"
    return {**item.entry, "InstalledVersion": bumped}


class _Pool:
    """The findings of one image of a project, each alive from the build that introduced it for a while."""

    def __init__(self, slug: str, plan: ImagePlan, last_build: int):
        rate = plan.active / plan.life
        self.born: dict[int, list[tuple[PoolFinding, int]]] = defaultdict(list)
        seen: set[tuple] = set()
        for build in range(0, last_build + 1):
            rng = random.Random(f"{slug}:{plan.name}:{build}")
            count = plan.active if build == 0 else sum(rng.random() < rate / 4 for _ in range(4))
            for _ in range(count):
                item = _pool_finding(rng, plan.name)
                life = 1 + min(int(rng.expovariate(1 / plan.life)), int(plan.life * 5))
                if item.key not in seen:
                    seen.add(item.key)
                    self.born[build].append((item, build + life))

    def active_at(self, builds: list[int]) -> dict[int, list[dict]]:
        """(result, Trivy entry) of the findings alive at each of the builds, in one sweep."""
        alive: dict[tuple, tuple[PoolFinding, int, int]] = {}
        result, swept = {}, -1
        for build in sorted(set(builds)):
            for born in range(swept + 1, build + 1):
                for item, dies in self.born.get(born, ()):
                    alive[item.key] = (item, born, dies)
            swept = build
            for ended in [key for key, (_, _, dies) in alive.items() if dies <= build]:
                del alive[ended]
            result[build] = [(item.result, _entry(item, born, build)) for item, born, _ in alive.values()]
        return result


def _branch_extras(slug: str, branch: str, image: str) -> list[tuple[str, dict]]:
    """Findings a feature branch brings with it (a new dependency, say)."""
    rng = random.Random(f"{slug}:{branch}:{image}")
    return [(item.result, item.entry) for item in (_pool_finding(rng, image) for _ in range(rng.randint(1, 3)))]


class _Images:
    """Trivy reports of a project's images, build by build."""

    def __init__(self, project: Project, plans: tuple[ImagePlan, ...], builds: list[int]):
        self.project = project
        self.names = [plan.name for plan in plans]
        self.repositories = {plan.name: f"{REGISTRY}/{project.gitlab_project_path or project.slug}/{plan.name}"
                             for plan in plans}
        self.active = {plan.name: _Pool(project.slug, plan, max(builds, default=0)).active_at(builds)
                       for plan in plans}

    def report(self, run: PipelineRun, image: str, at: datetime) -> bytes:
        items = list(self.active[image].get(_build(run), ()))
        if image == "app" and run.branch not in (self.project.dev_branch, self.project.release_branch):
            items += _branch_extras(self.project.slug, run.branch, image)
        reference = f"{self.repositories[image]}:{(run.commit_sha or f'{_build(run):08d}')[:8]}"
        grouped: dict[str, list[dict]] = defaultdict(list)
        for result, entry in items:
            grouped[result].append(entry)
        results = [
            {"Target": f"{reference} (alpine {OS_RELEASE})", "Class": "os-pkgs", "Type": "alpine",
             "Vulnerabilities": grouped.pop("os", [])},
        ]
        if "python" in grouped:
            python = [{**entry, "PkgPath": f"{SITE_PACKAGES}/{entry['PkgName']}-{entry['InstalledVersion']}"
                                           ".dist-info/METADATA"} for entry in grouped.pop("python")]
            results.append({"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg",
                            "Vulnerabilities": python})
        if "config" in grouped:
            results.append({"Target": "Dockerfile", "Class": "config", "Type": "dockerfile",
                            "Misconfigurations": grouped.pop("config")})
        if "license" in grouped:
            results.append({"Target": "OS Packages", "Class": "license", "Licenses": grouped.pop("license")})
        for path, secrets in sorted(grouped.items()):
            results.append({"Target": path, "Class": "secret", "Secrets": secrets})
        return orjson.dumps({
            "SchemaVersion": 2, "CreatedAt": at.isoformat(), "ArtifactName": reference,
            "ArtifactType": "container_image", "Metadata": {"OS": {"Family": "alpine", "Name": OS_RELEASE}},
            "Results": results,
        })


# --- Gauntlt -----------------------------------------------------------------------------------------------------

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

LOAD_SECONDS = 360  # over 300 s, so the parser charts it in 5-second slices (72), not 1-second ones
NANOSECONDS = 1_000_000


def _cucumber(slug: str, build: int, status: str) -> bytes:
    """Cucumber JSON of the attacks: all pass on a green stage, 2 fail on an unstable one, 1 to 3 on a failed one."""
    rng = random.Random(f"{slug}:{build}:gauntlt")
    failing: set[int] = set()
    if status != StageStatus.SUCCESS:
        count = 2 if status == StageStatus.UNSTABLE else rng.randint(1, 3)
        weights = [attack[5] for attack in ATTACKS]
        while len(failing) < count:
            failing.add(rng.choices(range(len(ATTACKS)), weights)[0])
    undecided = rng.randrange(len(ATTACKS)) if status == StageStatus.FAILED and rng.random() < 0.4 else None
    features: dict[str, dict] = {}
    for number, (feature, name, step, message, typical_ms, _) in enumerate(ATTACKS):
        line = 4 + number * 6
        tool = feature.split(" with ")[-1].split(" against ")[0].replace("Run ", "")
        if number in failing:
            last = {"status": "failed", "duration": int(rng.uniform(1, 9) * NANOSECONDS),
                    "error_message": f"{message} (RSpec::Expectations::ExpectationNotMetError)\n"
                                     f"./features/step_definitions/{tool}_steps.rb:{rng.randint(8, 60)}"}
        elif number == undecided:
            last = {"status": "undefined"}
        else:
            last = {"status": "passed", "duration": int(rng.uniform(1, 9) * NANOSECONDS)}
        keyword, text = step.split(" ", 1)
        scenario = {
            "id": f"{feature.lower()};{name.lower()}".replace(" ", "-"), "keyword": "Scenario", "name": name,
            "line": line, "description": "", "type": "scenario",
            "tags": [{"name": "@slow", "line": line - 1}] if typical_ms > 30_000 else [],
            "steps": [
                {"keyword": "Given ", "name": f'"{tool}" is installed', "line": line + 1,
                 "result": {"status": "passed", "duration": int(rng.uniform(20, 80) * NANOSECONDS)}},
                {"keyword": "When ", "name": f'I launch a "{tool}" attack', "line": line + 2,
                 "result": {"status": "passed", "duration": int(typical_ms * rng.uniform(0.7, 1.4) * NANOSECONDS)}},
                {"keyword": f"{keyword} ", "name": text, "line": line + 3, "result": last},
            ],
        }
        features.setdefault(feature, {
            "uri": f"attacks/{feature.split(' ')[-1].lower()}.attack", "id": feature.lower().replace(" ", "-"),
            "keyword": "Feature", "name": feature, "line": 1, "description": "", "tags": [], "elements": [],
        })["elements"].append(scenario)
    return orjson.dumps(list(features.values()))


# --- JMeter ------------------------------------------------------------------------------------------------------

JTL_HEADER = ("timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,"
              "bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect")
THREADS = 50


def _jtl(slug: str, build: int, status: str, started_at: datetime, samples: int) -> bytes:
    """A JMeter CSV: threads ramp up over the first minute; response times drift slowly across builds, vary per
    run, and the checkout degrades (slower, failing) in the last minutes of a failed stage."""
    rng = random.Random(f"{slug}:{build}:jmeter")
    # a service that mostly holds its speed (so that p95 stays within production + 20 %, the default gate, as a
    # team's would), drifting a little over builds
    drift = 1 + 0.05 * math.sin(build / 9) + 0.03 * math.sin(build / 41)
    failed = status == StageStatus.FAILED
    labels = [(label, mean * drift * rng.uniform(0.96, 1.04)) for label, mean, _ in LOAD_LABELS]
    shares = [share for _, _, share in LOAD_LABELS]
    count = int(samples * rng.uniform(0.9, 1.1))
    slots = LOAD_SECONDS // 5
    threads = [min(THREADS, 5 * (slot + 1)) for slot in range(slots)]
    start_ms = int(started_at.timestamp() * 1000)
    rows = []
    for slot, (label, mean) in zip(rng.choices(range(slots), threads, k=count),
                                   rng.choices(labels, shares, k=count), strict=True):
        checkout = label == "POST /checkout"
        slow = (3.4 if failed and checkout else 1) * (1.6 if failed and slot > 40 else 1)
        elapsed = max(1, int(mean * slow * (0.75 + 0.25 * threads[slot] / THREADS) * rng.lognormvariate(-0.18, 0.6)))
        error_rate = 0.0005 + (rng.uniform(0.02, 0.05) if failed and checkout else 0)
        ok = rng.random() >= error_rate
        rows.append((start_ms + slot * 5000 + rng.randrange(5000), elapsed, label, ok, threads[slot]))
    rows.sort()
    lines = [JTL_HEADER]
    for stamp, elapsed, label, ok, active in rows:
        path = label.split(" ", 1)[1].replace("{id}", str(stamp % 500 + 1))
        code, message = ("200", "OK") if ok else ("500", "Internal Server Error")
        failure = "" if ok else "Test failed: code expected to be 200"
        lines.append(f"{stamp},{elapsed},{label},{code},{message},Shoppers 1-{stamp % active + 1},text,"
                     f"{str(ok).lower()},{failure},{2000 + stamp % 18000},{300 + stamp % 400},{active},{active},"
                     f"https://staging.shop.example.com{path},{int(elapsed * 0.8)},0,{1 + stamp % 9}")
    return ("\n".join(lines) + "\n").encode()
