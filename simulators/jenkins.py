"""A loopback HTTP server that imitates Jenkins, as python-jenkins and the portal's pipeline see it.

What it answers follows ../shared/notes/protocols.md and the real payloads in ../shared/fixtures/jenkins:
basic auth on every request, the DefaultCrumbIssuer crumb required on POSTs, `buildWithParameters` answering
201 with the queue item's Location, queue items that wait then leave with an executable (or are cancelled),
build info with `result` null while building, console text, and `stop` answering 302 to the build page.

When a build starts it plays the Jenkinsfile against the portal over real HTTP, in a thread, with the
project's token: run start, every stage, Trivy reports, image artifacts, the staging deployment, the Gauntlt
and JMeter reports, and the final result. Knobs: `speed` (seconds an average stage takes), `queue_seconds`
(how long an item waits in the queue) and `scenario` (fail at a stage, or hold at one until stopped).

    with SimulatedJenkins(users={"demo": "secret"}) as fake:
        fake.add_job("delivery/shop", portal=PortalTarget(live_server.url, "shop", token))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests

from deliveries.models import DELIVERY_CHAIN
from simulators import reports

logger = logging.getLogger(__name__)

JENKINS_VERSION = "2.462.3"
CRUMB_FIELD = "Jenkins-Crumb"
REGISTRY = "registry.example.com"
PARAMETERS = ["BRANCH", "COMMIT", "PORTAL_RUN_ID", "PORTAL_URL"]
QUEUE_ITEM_MEMORY_SECONDS = 300  # Jenkins forgets items about 5 minutes after they leave the queue
FIRST_QUEUE_ID = 100

# The Jenkinsfile's stages, with how long each takes relative to the average one.
STAGE_WEIGHTS = {name: seconds * len(DELIVERY_CHAIN) / sum(DELIVERY_CHAIN.values())
                 for name, seconds in DELIVERY_CHAIN.items()}
DEV_STAGES = list(STAGE_WEIGHTS)[:10]
RELEASE_STAGES = list(STAGE_WEIGHTS)
IMAGES = ("app", "nginx")

# A handful of real-looking Alpine findings; each build picks some, deterministically.
KNOWN_VULNERABILITIES = [
    ("CVE-2023-5363", "openssl", "3.1.3-r0", "HIGH", "3.1.4-r0"),
    ("CVE-2024-0727", "openssl", "3.1.3-r0", "MEDIUM", "3.1.4-r5"),
    ("CVE-2023-42363", "busybox", "1.36.1-r5", "MEDIUM", "1.36.1-r7"),
    ("CVE-2023-52425", "expat", "2.5.0-r2", "HIGH", "2.6.0-r0"),
    ("CVE-2024-28757", "expat", "2.5.0-r2", "HIGH", "2.6.2-r0"),
    ("CVE-2024-2511", "libssl3", "3.1.4-r5", "LOW", "3.1.4-r6"),
    ("CVE-2023-6129", "libcrypto3", "3.1.4-r0", "MEDIUM", "3.1.4-r3"),
    ("CVE-2024-25062", "libxml2", "2.11.6-r0", "HIGH", "2.11.7-r0"),
]
ATTACKS = [
    "nmap finds only ports 80 and 443 open",
    "sqlmap finds no injectable parameter",
    "sslyze finds no weak cipher",
    "curl sees the security headers",
]
JMETER_LABELS = ["GET /", "GET /products", "POST /basket"]


@dataclass(frozen=True)
class PortalTarget:
    """Where a job's builds report: the portal's base URL, the project's slug and its API token; and the health URLs
    the Jenkinsfile's checks probe (its STAGING_HEALTH_URL and PRODUCTION_HEALTH_URL; none set, none reported)."""

    url: str
    slug: str
    token: str
    release_branch: str = "master"
    staging_health_url: str = ""
    production_health_url: str = ""


@dataclass(frozen=True)
class Scenario:
    fail_at: str = ""  # this stage fails; the later ones are reported skipped and the build fails
    hold_at: str = ""  # this stage runs until the build is stopped


@dataclass
class Build:
    job: Job
    number: int
    queue_id: int
    params: dict[str, str]
    user: str
    scenario: Scenario
    timestamp: int  # ms since the epoch, when it started
    building: bool = True
    result: str | None = None
    duration: int = 0
    console: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass
class Job:
    path: str
    portal: PortalTarget | None = None
    next_build_number: int = 1
    builds: dict[int, Build] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def url_path(self) -> str:
        return "".join(f"job/{quote(part)}/" for part in self.path.split("/"))


@dataclass
class QueueItem:
    id: int
    job: Job
    params: dict[str, str]
    user: str
    in_queue_since: int  # ms
    quiet_seconds: float
    build: Build | None = None
    cancelled: bool = False
    left_at: float | None = None  # time.monotonic()
    timer: threading.Timer | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SimulatedJenkins:
    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.03,
        queue_seconds: float = 0.1,
        scenario: Scenario | None = None,
        callback_attempts: int = 3,
        callback_backoff: float = 0.2,
    ):
        self.users = dict(users or {"demo": "demo-token"})
        self.speed = speed
        self.queue_seconds = queue_seconds
        self.scenario = scenario or Scenario()
        self.callback_attempts = callback_attempts
        self.callback_backoff = callback_backoff
        self.crumb = secrets.token_hex(32)
        self.jobs: dict[str, Job] = {}
        self.queue: dict[int, QueueItem] = {}
        self.next_queue_id = FIRST_QUEUE_ID
        self.requests_seen: list[tuple[str, str]] = []  # (method, path?query) of every request received
        self.callbacks: list[tuple[str, str, int | None]] = []  # (method, portal URL, status or None)
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.serving: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> SimulatedJenkins:
        self.serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-jenkins", daemon=True)
        self.serving.start()
        return self

    def stop(self) -> None:
        with self.lock:
            builds = [b for job in self.jobs.values() for b in job.builds.values()]
            for item in self.queue.values():
                if item.timer:
                    item.timer.cancel()
        for build in builds:
            build.stopped.set()
        if self.serving:
            self.server.shutdown()
            self.serving.join(timeout=5)
        self.server.server_close()
        for build in builds:
            if build.thread:
                build.thread.join(timeout=5)

    def __enter__(self) -> SimulatedJenkins:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def add_job(self, path: str, *, portal: PortalTarget | None = None, next_build_number: int = 1) -> Job:
        with self.lock:
            path = path.strip("/")
            job = self.jobs[path] = Job(path=path, portal=portal, next_build_number=next_build_number)
        return job

    def saw(self, method: str, path_start: str) -> bool:
        """Whether a request like `POST /job/a/job/b/3/stop` was received."""
        return any(m == method and p.startswith(path_start) for m, p in list(self.requests_seen))

    def build(self, path: str, number: int) -> Build:
        return self.jobs[path].builds[number]

    def forget_build(self, path: str, number: int) -> None:
        """Discard a build, as Jenkins' build retention (or deleting the job) does: then it answers 404."""
        with self.lock:
            build = self.jobs[path].builds.pop(number)
        build.stopped.set()

    def wait_for_builds(self, timeout: float = 30) -> bool:
        """Wait until no build is running; True if they all finished in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = [b for job in self.jobs.values() for b in job.builds.values() if b.building]
                waiting = [i for i in self.queue.values() if i.build is None and not i.cancelled]
            if not busy and not waiting:
                return True
            time.sleep(0.02)
        return False

    # --- HTTP -------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path, query = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests_seen.append((method, raw_path))
        authorization = headers.get("Authorization", "")
        user = self.authenticated_user(authorization)
        # As a Jenkins granting anonymous users read access: a browser without credentials may read the pages
        # and console text the portal links to; the API, and every POST, still need basic auth.
        if user is None and (authorization or method != "GET" or not is_page(path)):
            return 401, {"WWW-Authenticate": 'Basic realm="Jenkins"'}, b"Invalid password/token for user"
        if method == "POST" and not hmac.compare_digest(headers.get(CRUMB_FIELD, ""), self.crumb):
            return 403, {}, b"No valid crumb was included in the request"
        if path == "/" and method == "GET":
            jobs = "".join(f'<li><a href="{escape(self.url + job.url_path)}">{escape(job.path)}</a></li>'
                           for job in sorted(self.jobs.values(), key=lambda job: job.path))
            return html("Dashboard [Jenkins]", f"<h1>Jobs</h1><ul>{jobs}</ul>")
        if path == "/crumbIssuer/api/json" and method == "GET":
            crumb = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": self.crumb,
                     "crumbRequestField": CRUMB_FIELD}
            return as_json(crumb)
        if path == "/me/api/json" and method == "GET":
            return as_json(self.whoami(user))
        if path == "/queue/cancelItem" and method == "POST":
            return self.cancel_item(query.get("id", ""))
        if path.startswith("/queue/item/") and method == "GET":
            return self.queue_item_json(path)
        if path.startswith("/job/"):
            return self.job_request(method, path, query, user)
        return not_found()

    def authenticated_user(self, header: str) -> str | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(password, expected):
            return None
        return user

    def job_request(self, method: str, path: str, query: dict[str, str], user: str):
        segments = [s for s in path.split("/") if s]
        names = []
        while len(segments) >= 2 and segments[0] == "job":
            names.append(segments[1])
            segments = segments[2:]
        with self.lock:
            job = self.jobs.get("/".join(names))
            if job is None:
                return not_found()
            if segments == [] and method == "GET":
                builds = "".join(f'<li><a href="{escape(self.build_url(b))}">#{b.number}</a> {escape(build_result(b))}'
                                 "</li>" for b in sorted(job.builds.values(), key=lambda b: -b.number))
                return html(f"{job.path} [Jenkins]", f"<h1>{escape(job.path)}</h1><ul>{builds}</ul>")
            if segments == ["api", "json"] and method == "GET":
                return as_json(self.job_json(job))
            if segments in (["buildWithParameters"], ["build"]) and method == "POST":
                return self.enqueue(job, query, user)
            if not segments or not segments[0].isdigit():
                return not_found()
            build = job.builds.get(int(segments[0]))
            if build is None:
                return not_found()
            rest = segments[1:]
            if rest == [] and method == "GET":
                return html(f"{job.path} #{build.number} [Jenkins]", self.build_page(build))
            if rest == ["console"] and method == "GET":
                console = "\n".join(build.console)
                return html(f"{job.path} #{build.number} Console [Jenkins]",
                            f"<h1>Console output of #{build.number}</h1><pre>{escape(console)}</pre>")
            if rest == ["api", "json"] and method == "GET":
                return as_json(self.build_json(build))
            if rest == ["consoleText"] and method == "GET":
                return 200, {"Content-Type": "text/plain;charset=utf-8"}, "\n".join(build.console).encode() + b"\n"
            if rest == ["stop"] and method == "POST":
                build.stopped.set()
                return 302, {"Location": self.build_url(build)}, b""
        return not_found()

    # --- queue and builds ---------------------------------------------------------------------------

    def enqueue(self, job: Job, query: dict[str, str], user: str):
        params = {name: query[name] for name in PARAMETERS if name in query}  # Jenkins drops undeclared ones
        item = QueueItem(id=self.next_queue_id, job=job, params=params, user=user, in_queue_since=now_ms(),
                         quiet_seconds=self.queue_seconds)
        self.next_queue_id += 1
        self.queue[item.id] = item
        item.timer = threading.Timer(self.queue_seconds, self.leave_queue, args=[item])
        item.timer.daemon = True
        item.timer.start()
        return 201, {"Location": f"{self.url}queue/item/{item.id}/"}, b""

    def leave_queue(self, item: QueueItem) -> None:
        with self.lock:
            if item.cancelled or item.build is not None:
                return
            job = item.job
            build = Build(job=job, number=job.next_build_number, queue_id=item.id, params=item.params,
                          user=item.user, scenario=self.scenario, timestamp=now_ms())
            job.next_build_number += 1
            job.builds[build.number] = build
            item.build, item.left_at = build, time.monotonic()
            build.console.append(f"Started by user {item.user}")
            build.thread = threading.Thread(target=self.play, args=[build], name=f"build {job.path} #{build.number}",
                                            daemon=True)
        build.thread.start()

    def cancel_item(self, raw_id: str):
        with self.lock:
            item = self.queue.get(int(raw_id)) if raw_id.isdigit() else None
            if item is None or item.left_at is not None or item.cancelled:
                # As Jenkins: only items still in the queue can be cancelled (python-jenkins ignores the 404).
                return not_found()
            item.cancelled, item.left_at = True, time.monotonic()
            if item.timer:
                item.timer.cancel()
        return 204, {}, b""

    def queue_item_json(self, path: str):
        segments = [s for s in path.split("/") if s]
        if len(segments) != 5 or segments[3:] != ["api", "json"] or not segments[2].isdigit():
            return not_found()
        with self.lock:
            item = self.queue.get(int(segments[2]))
            if item is None or (item.left_at and time.monotonic() - item.left_at > QUEUE_ITEM_MEMORY_SECONDS):
                return not_found()
            return as_json(self.queue_json(item))

    def build_url(self, build: Build) -> str:
        return f"{self.url}{build.job.url_path}{build.number}/"

    def build_page(self, build: Build) -> str:
        parameters = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in build.params.items())
        return (f'<h1>{escape(build.job.path)} #{build.number}: {escape(build_result(build))}</h1>'
                f"<dl>{parameters}</dl>"
                f'<p><a href="console">Console output</a> · <a href="../">{escape(build.job.path)}</a></p>')

    # --- JSON shapes (see ../shared/fixtures/jenkins) -----------------------------------------------

    def whoami(self, user: str) -> dict:
        return {
            "_class": "hudson.model.User",
            "absoluteUrl": f"{self.url}user/{user}",
            "description": None,
            "fullName": user,
            "id": user,
            "property": [{"_class": "jenkins.security.ApiTokenProperty"}],
        }

    def task_json(self, job: Job, *, building: bool = False) -> dict:
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "name": job.name,
            "url": f"{self.url}{job.url_path}",
            "color": job_color(job) + ("_anime" if building else ""),
        }

    def queue_json(self, item: QueueItem) -> dict:
        data = {
            "_class": "hudson.model.Queue$WaitingItem",
            "actions": [parameters_action(item.params), cause_action(item.user)],
            "blocked": False,
            "buildable": False,
            "id": item.id,
            "inQueueSince": item.in_queue_since,
            "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
            "stuck": False,
            "task": self.task_json(item.job),
            "url": f"queue/item/{item.id}/",
        }
        if item.left_at is None:
            remaining = max(0.0, item.in_queue_since / 1000 + item.quiet_seconds - time.time())
            data["why"] = f"In the quiet period. Expires in {remaining:.1f} sec"
            data["timestamp"] = item.in_queue_since + int(item.quiet_seconds * 1000)
            return data
        data["_class"] = "hudson.model.Queue$LeftItem"
        data["why"] = None
        data["cancelled"] = item.cancelled
        data["executable"] = None
        if item.build is not None:
            data["task"] = self.task_json(item.job, building=item.build.building)
            data["executable"] = {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                "number": item.build.number,
                "url": self.build_url(item.build),
            }
        return data

    def build_json(self, build: Build) -> dict:
        job = build.job
        neighbours = {n: {"number": n, "url": self.build_url(job.builds[n])} for n in job.builds}
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "actions": [parameters_action(build.params), cause_action(build.user), {}, {},
                        {"_class": "org.jenkinsci.plugins.workflow.job.views.FlowGraphAction"}, {}],
            "artifacts": [
                {"displayPath": name.rsplit("/", 1)[-1], "fileName": name.rsplit("/", 1)[-1], "relativePath": name}
                for name in build.archived
            ],
            "building": build.building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": build.duration,
            "estimatedDuration": int(self.speed * 1000 * sum(STAGE_WEIGHTS.values())),
            "executor": {"_class": "hudson.model.OneOffExecutor"} if build.building else None,
            "fullDisplayName": f"{job.path.replace('/', ' » ')} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result,  # null while building, as Jenkins
            "timestamp": build.timestamp,
            "url": self.build_url(build),
            "changeSets": [],
            "culprits": [],
            "nextBuild": neighbours.get(build.number + 1),
            "previousBuild": neighbours.get(build.number - 1),
        }

    def job_json(self, job: Job) -> dict:
        numbers = sorted(job.builds, reverse=True)

        def ref(numbers_matching):
            number = next(iter(numbers_matching), None)
            if number is None:
                return None
            return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": number,
                    "url": self.build_url(job.builds[number])}

        done = [n for n in numbers if not job.builds[n].building]
        results = {n: job.builds[n].result for n in done}
        waiting = [i for i in self.queue.values() if i.job is job and i.left_at is None]
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "actions": [{}, {}, {"_class": "org.jenkinsci.plugins.displayurlapi.actions.JobDisplayAction"}, {},
                        {"_class": "com.cloudbees.plugins.credentials.ViewCredentialsAction"}],
            "description": "",
            "displayName": job.name,
            "displayNameOrNull": None,
            "fullDisplayName": job.path.replace("/", " » "),
            "fullName": job.path,
            "name": job.name,
            "url": f"{self.url}{job.url_path}",
            "buildable": True,
            "builds": [ref([n]) for n in numbers[:100]],
            "color": job_color(job),
            "firstBuild": ref(reversed(numbers)),
            "healthReport": [],
            "inQueue": bool(waiting),
            "keepDependencies": False,
            "lastBuild": ref(numbers),
            "lastCompletedBuild": ref(done),
            "lastFailedBuild": ref(n for n in done if results[n] == "FAILURE"),
            "lastStableBuild": ref(n for n in done if results[n] == "SUCCESS"),
            "lastSuccessfulBuild": ref(n for n in done if results[n] in ("SUCCESS", "UNSTABLE")),
            "lastUnstableBuild": ref(n for n in done if results[n] == "UNSTABLE"),
            "lastUnsuccessfulBuild": ref(n for n in done if results[n] != "SUCCESS"),
            "nextBuildNumber": job.next_build_number,
            "property": [
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": [
                        {"_class": "hudson.model.StringParameterDefinition", "name": name,
                         "type": "StringParameterDefinition"}
                        for name in PARAMETERS
                    ],
                }
            ],
            "queueItem": {"_class": "hudson.model.Queue$WaitingItem", "id": waiting[0].id} if waiting else None,
            "concurrentBuild": True,
            "resumeBlocked": False,
        }

    # --- the pipeline, played against the portal ----------------------------------------------------

    def play(self, build: Build) -> None:
        try:
            outcome = Player(self, build).play()
        except Exception:  # noqa: BLE001 - a bug in the imitation must end the build, not hang it
            logger.exception("fake Jenkins: build %s #%s crashed", build.job.path, build.number)
            outcome = "FAILURE"
        with self.lock:
            build.result = outcome
            build.duration = now_ms() - build.timestamp
            build.console.append(f"Finished: {outcome}")
            build.building = False


class Player:
    """Plays one build's callbacks, in the Jenkinsfile's order, against the portal."""

    def __init__(self, fake: SimulatedJenkins, build: Build):
        self.fake, self.build = fake, build
        self.portal = build.job.portal
        self.rng = random.Random(f"{build.job.path}#{build.number}")
        self.branch = build.params.get("BRANCH") or "dev"
        self.commit = build.params.get("COMMIT") or hashlib.sha1(
            f"{build.job.path}:{self.branch}:{build.number}".encode()
        ).hexdigest()
        self.images: list[dict] = []

    def play(self) -> str:
        build = self.build
        release = self.portal.release_branch if self.portal else "master"
        stages = RELEASE_STAGES if self.branch == release else DEV_STAGES
        run_id = build.params.get("PORTAL_RUN_ID", "")
        self.post("runs/", {
            "build_number": build.number,
            "branch": self.branch,
            "commit_sha": self.commit,
            "commit_title": f"Simulated change on {self.branch}",
            "commit_author": "Simulated Developer",
            "status": "running",
            "started_at": datetime.fromtimestamp(build.timestamp / 1000, UTC).isoformat().replace("+00:00", "Z"),
            "build_url": self.fake.build_url(build),
            "queue_id": build.queue_id,
            **({"portal_run_id": int(run_id)} if run_id.isdigit() else {}),
        })
        outcome = "SUCCESS"
        for order, name in enumerate(stages, start=1):
            if outcome != "SUCCESS":
                self.stage(name, order, "skipped")
                continue
            outcome = self.run_stage(name, order)
        final = {"SUCCESS": "success", "FAILURE": "failed", "ABORTED": "aborted"}[outcome]
        self.post("runs/", {"build_number": build.number, "status": final, "finished_at": iso_now()})
        return outcome

    def run_stage(self, name: str, order: int) -> str:
        build, scenario = self.build, self.build.scenario
        started = iso_now()
        began = time.monotonic()
        self.log(f"[Pipeline] {{ ({name})")
        self.stage(name, order, "running", started_at=started)
        refusal = self.deploy_refusal() if name == "Deploy production" else ""
        if refusal:  # portalGate: the one step that fails the build on the portal's answer
            self.log(f"ERROR: {refusal}")
            self.stage(name, order, "failed", started_at=started, finished_at=iso_now(),
                       duration_ms=int((time.monotonic() - began) * 1000))
            return "FAILURE"
        if scenario.hold_at == name:
            stopped = build.stopped.wait(timeout=3600)
        else:
            stopped = build.stopped.wait(timeout=self.fake.speed * STAGE_WEIGHTS[name])
        elapsed = int((time.monotonic() - began) * 1000)
        finished = {"started_at": started, "finished_at": iso_now(), "duration_ms": elapsed}
        if stopped:
            self.log("Aborted by user")
            self.stage(name, order, "aborted", **finished)
            return "ABORTED"
        if scenario.fail_at == name:
            self.log(f"ERROR: {name} failed (simulated)")
            self.check_after(name, ok=False)
            self.stage(name, order, "failed", **finished)
            return "FAILURE"
        self.stage(name, order, "success", **finished)
        self.log("[Pipeline] }")
        self.after(name)
        self.check_after(name, ok=True)
        return "SUCCESS"

    def stage(self, name: str, order: int, status: str, **times) -> None:
        self.post(f"runs/{self.build.number}/stages/", {"name": name, "order": order, "status": status, **times})

    def after(self, name: str) -> None:
        """What the Jenkinsfile sends once a stage is done."""
        slug = self.portal.slug if self.portal else self.build.job.name
        tag = self.commit[:8]
        if name == "Trivy scan":
            for image in IMAGES:
                report = reports.trivy_report(self.vulnerabilities(image), image=f"{REGISTRY}/{slug}/{image}:{tag}")
                self.upload(f"trivy-{image}.json", report, "trivy", "application/json")
        elif name == "Push images":
            for image in IMAGES:
                digest = hashlib.sha256(f"{self.build.job.path}#{self.build.number}:{image}".encode()).hexdigest()
                artifact = {"repository": f"{REGISTRY}/{slug}/{image}", "tag": tag, "digest": f"sha256:{digest}",
                            "registry": REGISTRY}
                self.images.append({k: artifact[k] for k in ("repository", "tag", "digest")})
                self.post(f"runs/{self.build.number}/artifacts/", artifact)
        elif name in ("Deploy staging", "Deploy production"):
            environment = "staging" if name == "Deploy staging" else "production"
            started = iso_now()
            log = "\n".join(f"docker pull {i['repository']}@{i['digest']}" for i in self.images)
            self.post(f"runs/{self.build.number}/deployments/", {
                "environment": environment, "status": "success", "images": self.images,
                "started_at": started, "finished_at": iso_now(), "log": log + f"\n{environment} is healthy",
            })
        elif name == "Gauntlt attacks":
            report = reports.cucumber_report([(attack, "passed", "") for attack in ATTACKS])
            self.upload("gauntlt.json", report, "gauntlt", "application/json")
        elif name == "Load test":
            self.upload("jmeter.jtl", reports.jtl_csv(self.load_samples()), "jmeter", "text/csv")

    def check_after(self, name: str, *, ok: bool) -> None:
        """The Jenkinsfile's portalCheck: the "Availability test" stage reports its check of staging, passed or not;
        "Deploy production", once Ansible is done, what production answers (not when the build is stopped)."""
        if name == "Availability test":
            environment, url, error = "staging", self.portal and self.portal.staging_health_url, (
                f"ERROR: {name} failed (simulated)")
        elif name == "Deploy production":
            environment, url, error = "production", self.portal and self.portal.production_health_url, (
                "no answer 200 after 20 tries (exit 1)")
        else:
            return
        if url:  # as portalCall sends it: null values left out
            self.post("checks/", {"environment": environment, "url": url, "ok": ok, **({} if ok else {"error": error})})

    def vulnerabilities(self, image: str) -> list[dict]:
        rng = random.Random(f"{self.build.job.path}#{self.build.number}:{image}")
        picked = rng.sample(KNOWN_VULNERABILITIES, k=rng.randint(2, 4))
        return [reports.trivy_vulnerability(cve, package=package, installed=installed, severity=severity, fixed=fixed)
                for cve, package, installed, severity, fixed in picked]

    def load_samples(self) -> list[tuple[int, int, str, bool]]:
        start = self.build.timestamp
        rows = []
        for i in range(300):
            label = JMETER_LABELS[i % len(JMETER_LABELS)]
            rows.append((start + i * 50, self.rng.randint(20, 400), label, self.rng.random() > 0.01))
        return rows

    def log(self, line: str) -> None:
        with self.fake.lock:
            self.build.console.append(line)

    # --- HTTP to the portal -------------------------------------------------------------------------

    def post(self, path: str, payload: dict) -> None:
        self.send(path, json=payload)

    def deploy_refusal(self) -> str:
        """Ask the portal's deploy permission for this commit, as the Jenkinsfile's portalGate does: "" when
        allowed, else why not (the portal's words, or that it could not be reached)."""
        if self.portal is None:
            return ""
        url = f"{self.portal.url.rstrip('/')}/api/v1/projects/{self.portal.slug}/deploy-permission/"
        params = {"environment": "production", "commit": self.commit}
        headers = {"Authorization": f"Bearer {self.portal.token}"}
        for attempt in range(1, self.fake.callback_attempts + 1):
            try:
                answer = requests.get(url, params=params, headers=headers, timeout=30)
            except requests.RequestException as exc:
                logger.warning("fake Jenkins: GET %s failed (%s), attempt %s", url, type(exc).__name__, attempt)
            else:
                with self.fake.lock:
                    self.fake.callbacks.append(("GET", url, answer.status_code))
                if answer.status_code == 200:
                    self.log(f"delivery portal: deploying {self.commit} to production is allowed")
                    return ""
                if 400 <= answer.status_code < 500:
                    try:
                        detail = answer.json().get("detail", "")
                    except ValueError:
                        detail = ""
                    return (f"delivery portal refused GET deploy-permission/ (HTTP {answer.status_code}): "
                            f"{detail or 'no reason given'}")
            if attempt < self.fake.callback_attempts:
                time.sleep(self.fake.callback_backoff * attempt)
        return f"delivery portal unreachable: GET deploy-permission/ failed {self.fake.callback_attempts} times"

    def upload(self, filename: str, content: bytes, kind: str, content_type: str) -> None:
        with self.fake.lock:
            self.build.archived.append(f"reports/{filename}")
        self.send(f"runs/{self.build.number}/reports/", files={"file": (filename, content, content_type)},
                  data={"kind": kind})

    def send(self, path: str, **body) -> None:
        """POST to the portal, retried a few times; a failure is logged, never raised (Jenkins goes on)."""
        if self.portal is None:
            return
        url = f"{self.portal.url.rstrip('/')}/api/v1/projects/{self.portal.slug}/{path}"
        headers = {"Authorization": f"Bearer {self.portal.token}"}
        status = None
        for attempt in range(1, self.fake.callback_attempts + 1):
            try:
                status = requests.post(url, headers=headers, timeout=30, **body).status_code
            except requests.RequestException as exc:
                status = None
                logger.warning("fake Jenkins: POST %s failed (%s), attempt %s", url, type(exc).__name__, attempt)
            if status is not None and 200 <= status < 300:
                break
            if status is not None:
                logger.warning("fake Jenkins: POST %s answered %s, attempt %s", url, status, attempt)
            if attempt < self.fake.callback_attempts:
                time.sleep(self.fake.callback_backoff * attempt)
        with self.fake.lock:
            self.fake.callbacks.append(("POST", url, status))
        if status is None or not 200 <= status < 300:
            logger.error("fake Jenkins: gave up on POST %s (last status %s)", url, status)


def job_color(job: Job) -> str:
    done = [b for n, b in sorted(job.builds.items(), reverse=True) if not b.building]
    if not done:
        return "notbuilt"
    return {"SUCCESS": "blue", "UNSTABLE": "yellow", "ABORTED": "aborted"}.get(done[0].result, "red")


def parameters_action(params: dict[str, str]) -> dict:
    return {
        "_class": "hudson.model.ParametersAction",
        "parameters": [
            {"_class": "hudson.model.StringParameterValue", "name": name, "value": value}
            for name, value in params.items()
        ],
    }


def cause_action(user: str) -> dict:
    return {
        "_class": "hudson.model.CauseAction",
        "causes": [{"_class": "hudson.model.Cause$UserIdCause", "shortDescription": f"Started by user {user}",
                    "userId": user, "userName": user}],
    }


def build_result(build: Build) -> str:
    return "building" if build.building else (build.result or "")


def is_page(path: str) -> bool:
    """A page or the console text, read by people (not the JSON API, nor the crumb issuer, nor the queue)."""
    segments = [s for s in path.split("/") if s]
    return not segments or (segments[0] == "job" and "api" not in segments)


def as_json(data) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json;charset=utf-8"}, json.dumps(data).encode()


def html(title: str, body: str = "") -> tuple[int, dict[str, str], bytes]:
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head><body>"
            "<p><strong>Simulated Jenkins</strong>: the portal's demo imitation (simulators/jenkins.py), "
            f"not a real Jenkins.</p>{body}</body></html>")
    return 200, {"Content-Type": "text/html;charset=utf-8"}, page.encode()


def not_found() -> tuple[int, dict[str, str], bytes]:
    return 404, {"Content-Type": "text/html;charset=utf-8"}, b"<html><title>Not Found</title></html>"


class Handler(BaseHTTPRequestHandler):
    server_version = "Jetty(10.0.20)"

    def do_GET(self):  # noqa: N802 - the http.server API
        self.answer("GET")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.answer("POST")

    def answer(self, method: str) -> None:
        try:
            status, headers, body = self.server.fake.handle(method, self.path, self.headers)
        except Exception:  # noqa: BLE001 - answer 500 as Jenkins would, keep serving
            logger.exception("fake Jenkins: error on %s %s", method, self.path)
            status, headers, body = 500, {}, b"Internal error"
        self.send_response(status)
        self.send_header("X-Jenkins", JENKINS_VERSION)  # on every answer, as Jenkins
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the http.server API
        logger.debug("fake Jenkins: " + format, *args)
