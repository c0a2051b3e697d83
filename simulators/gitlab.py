"""A loopback HTTP server that imitates GitLab API v4, as python-gitlab and the portal see it.

What it answers follows ../shared/notes/protocols.md, GitLab's lib/api/merge_requests.rb and
merge_request_approvals.rb, and the real payloads in ../shared/fixtures/gitlab:

- `PRIVATE-TOKEN` on every request (401 `{"message": "401 Unauthorized"}` otherwise); `sudo` for admins;
- `GET /user` (its `web_url` starts with the server's URL, as python-gitlab's `auth()` checks), `GET /version`;
- projects by id or URL-encoded path (`group%2Fshop`), their branches, whose heads a test moves with `push()`
  (or that follow what the CI builds, with `follow()`);
- merge requests: create (201; 409 for a second open MR of the same branches), get, update (`state_event`), list
  with `state` / `source_branch` / `target_branch` filters and GitLab's paging headers (`X-Total`,
  `X-Next-Page`, `Link`); approve (201; 401 for the author on a project that forbids it or a second approval;
  409 when `sha` is not the head); merge (200; 405 when not mergeable; 422 "Branch cannot be merged" when asked
  to merge when the pipeline succeeds and it cannot; 409 "SHA does not match HEAD of source branch: <sha>");
- webhooks: "Push Hook" and "Merge Request Hook" payloads shaped like GitLab's, POSTed from a background thread
  with `X-Gitlab-Event`, `X-Gitlab-Token`, `X-Gitlab-Event-UUID`, `X-Gitlab-Webhook-UUID`, `X-Gitlab-Instance`
  and `Idempotency-Key` (kept when a delivery is sent again, as GitLab does on a resend);
- faults a test switches on: an HTTP status (5xx), a dropped connection (unreachable) or a delay (timeout).

    with SimulatedGitLab(tokens={"glpat-portal": "portal-bot"}) as gitlab:
        gitlab.add_project("delivery/shop", branches={"dev": sha, "master": base})
        gitlab.add_hook("delivery/shop", url=f"{live_server.url}/api/v1/hooks/gitlab/", token=secret)
        gitlab.push("delivery/shop", "dev", new_sha)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import requests

logger = logging.getLogger(__name__)

GITLAB_VERSION = "17.5.2"
GITLAB_REVISION = "9d5b1e3c7a0"
ZERO_SHA = "0" * 40
FIRST_PROJECT_ID = 101
FIRST_MR_ID = 5001
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
HOOK_TIMEOUT_SECONDS = 10
STATE_IDS = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}
MR_STATES = set(STATE_IDS)


def fake_sha(*parts) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()  # noqa: S324 - an id, not security


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    is_admin: bool = False


@dataclass
class Commit:
    sha: str
    message: str
    author_name: str
    author_email: str
    timestamp: datetime


@dataclass
class Hook:
    url: str
    token: str
    push_events: bool = True
    merge_requests_events: bool = True
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class MergeRequest:
    id: int
    iid: int
    project: Project
    title: str
    description: str
    author: User
    source_branch: str
    target_branch: str
    sha: str  # the head of the source branch
    base_sha: str  # the head of the target branch when it was opened
    created_at: datetime
    updated_at: datetime
    state: str = "opened"
    draft: bool = False
    conflict: bool = False  # a test's knob: "this MR has conflicts"
    approved_by: list[User] = field(default_factory=list)
    merge_commit_sha: str | None = None
    merged_by: User | None = None
    merged_at: datetime | None = None
    closed_by: User | None = None
    closed_at: datetime | None = None
    should_remove_source_branch: bool | None = None
    squash: bool = False

    @property
    def approvals_left(self) -> int:
        return max(self.project.approvals_required - len(self.approved_by), 0)

    @property
    def detailed_merge_status(self) -> str:
        if self.state != "opened":
            return "not_open"
        if self.draft:
            return "draft_status"
        if self.conflict:
            return "conflict"
        if self.approvals_left:
            return "not_approved"
        return "mergeable"

    @property
    def web_url(self) -> str:
        return f"{self.project.web_url}/-/merge_requests/{self.iid}"


@dataclass
class Project:
    id: int
    path: str  # path_with_namespace
    server: SimulatedGitLab
    default_branch: str = "master"
    approvals_required: int = 1
    author_can_approve: bool = False  # GitLab's merge_requests_author_approval; off by default
    reset_approvals_on_push: bool = True
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    next_iid: int = 1
    followed: dict[str, Callable[[], str | None]] = field(default_factory=dict)  # branch -> where its head is

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else self.path

    @property
    def web_url(self) -> str:
        return f"{self.server.url}/{self.path}"


@dataclass
class Fault:
    """What the server does instead of answering: a status, a dropped connection, or a wait first."""

    status: int | None = None
    message: str = ""  # the JSON `message` of that answer (5xx answer GitLab's or its proxy's own page)
    drop: bool = False  # close the connection without an answer: the client sees GitLab unreachable
    delay: float = 0.0  # seconds to wait before answering (or before dropping): the client times out
    method: str = ""  # only requests with this method ("" for any)
    path_contains: str = ""  # only requests whose path holds this ("" for any)
    times: int | None = None  # how many requests it hits; None: until cleared

    def applies(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path_contains in path


@dataclass
class Delivery:
    """One webhook delivery: what was sent where, and what came back."""

    url: str
    event: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    error: str = ""
    attempts: int = 0

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


def not_found(what: str = "Not found") -> ApiError:
    return ApiError(404, {"message": f"404 {what}"})


def unauthorized() -> ApiError:
    return ApiError(401, {"message": "401 Unauthorized"})


class SimulatedGitLab:
    def __init__(self, *, tokens: dict[str, str] | None = None, admins: set[str] | frozenset = frozenset(),
                 host: str = "127.0.0.1", port: int = 0):
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}  # token -> username
        for token, username in (tokens or {"glpat-simulated": "portal-bot"}).items():
            self.add_user(username, token=token, is_admin=username in admins)
        self.projects: dict[int, Project] = {}
        self.next_project_id = FIRST_PROJECT_ID
        self.next_mr_id = FIRST_MR_ID
        self.faults: list[Fault] = []
        self.requests_seen: list[tuple[str, str]] = []  # (method, path?query)
        self.deliveries: list[Delivery] = []
        self.outbox: queue.Queue[Delivery | None] = queue.Queue()
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.simulated = self
        self.serving: threading.Thread | None = None
        self.delivering: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatedGitLab:
        self.serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="simulated-gitlab", daemon=True)
        self.serving.start()
        self.delivering = threading.Thread(target=self.deliver_forever, name="simulated-gitlab-hooks", daemon=True)
        self.delivering.start()
        return self

    def stop(self) -> None:
        if self.serving:
            self.server.shutdown()
            self.serving.join(timeout=5)
        self.server.server_close()
        if self.delivering:
            self.outbox.put(None)
            self.delivering.join(timeout=HOOK_TIMEOUT_SECONDS + 1)

    def __enter__(self) -> SimulatedGitLab:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- what a test sets up and moves --------------------------------------------------------------

    def add_user(self, username: str, *, token: str = "", name: str = "", is_admin: bool = False) -> User:
        with self.lock:
            user = self.users.get(username)
            if user is None:
                user = User(id=len(self.users) + 1, username=username,
                            name=name or username.replace(".", " ").replace("-", " ").title(),
                            email=f"{username}@example.com", is_admin=is_admin)
                self.users[username] = user
            if token:
                self.tokens[token] = username
            return user

    def add_project(self, path: str, *, branches: dict[str, str | None] | None = None, default_branch: str = "master",
                    approvals_required: int = 1, author_can_approve: bool = False) -> Project:
        """A project whose branches start at the given heads (a made-up commit for None)."""
        with self.lock:
            project = Project(id=self.next_project_id, path=path.strip("/"), server=self,
                              default_branch=default_branch, approvals_required=approvals_required,
                              author_can_approve=author_can_approve)
            self.next_project_id += 1
            self.projects[project.id] = project
            for branch, sha in (branches or {default_branch: None}).items():
                sha = sha or fake_sha(project.path, branch, "initial")
                initial = Commit(sha, f"Initial commit on {branch}", "GitLab", "gitlab@example.com", now())
                project.commits.setdefault(sha, initial)
                project.branches[branch] = sha
            return project

    def add_hook(self, project: str | int, *, url: str, token: str, push_events: bool = True,
                 merge_requests_events: bool = True) -> Hook:
        with self.lock:
            hook = Hook(url=url, token=token, push_events=push_events, merge_requests_events=merge_requests_events)
            self.project(project).hooks.append(hook)
            return hook

    def project(self, ref: str | int) -> Project:
        """A project by id or path (as the API addresses it)."""
        with self.lock:
            text = str(ref)
            if text.isdigit() and int(text) in self.projects:
                return self.projects[int(text)]
            for project in self.projects.values():
                if project.path.lower() == text.strip("/").lower():
                    return project
        raise KeyError(ref)

    def merge_request(self, project: str | int, iid: int) -> MergeRequest:
        return self.project(project).merge_requests[iid]

    def push(self, project: str | int, branch: str, sha: str | None = None, *, message: str = "",
             user: str | None = None) -> str:
        """Move (or create) a branch's head, as a `git push` would; sends the Push Hook and updates open MRs."""
        with self.lock:
            return self.move_head(self.project(project), branch, sha, message=message, user=user)

    def follow(self, project: str | int, branch: str, head: Callable[[], str | None]) -> None:
        """The branch's head follows `head()` (e.g. the commit the CI built last), read before each request on the
        project, as if every built commit had been pushed before its build. No Push Hook is sent for it: the build
        it would start has happened. Open merge requests from the branch move with it, as on a push."""
        with self.lock:
            self.project(project).followed[branch] = head

    def catch_up(self, project: Project) -> None:
        for branch, head in project.followed.items():
            sha = head()
            if sha and sha != project.branches.get(branch):
                self.move_head(project, branch, sha, announce=False)

    def move_head(self, project: Project, branch: str, sha: str | None, *, message: str = "", user: str | None = None,
                  announce: bool = True) -> str:
        with self.lock:
            pusher = self.user(user) if user else self.first_user()
            before = project.branches.get(branch, ZERO_SHA)
            sha = sha or fake_sha(project.path, branch, before, len(project.commits))
            commit = project.commits.setdefault(
                sha, Commit(sha, message or f"Change on {branch}", pusher.name, pusher.email, now()))
            project.branches[branch] = sha
            if announce:
                self.emit(project, "Push Hook", self.push_payload(project, pusher, branch, before, sha, [commit]))
            for mr in project.merge_requests.values():
                if mr.state == "opened" and mr.source_branch == branch and mr.sha != sha:
                    oldrev, mr.sha, mr.updated_at = mr.sha, sha, now()
                    if project.reset_approvals_on_push:
                        mr.approved_by.clear()
                    self.emit_mr(mr, pusher, "update", extra={"oldrev": oldrev})
            return sha

    def open_merge_request(self, project: str | int, *, source_branch: str, target_branch: str, author: str,
                           title: str = "", description: str = "") -> MergeRequest:
        """An MR opened in GitLab by someone (not through the API under test)."""
        with self.lock:
            return self.create_mr(self.project(project), self.user(author), {
                "source_branch": source_branch, "target_branch": target_branch,
                "title": title or f"Merge {source_branch} into {target_branch}", "description": description})

    def restore_merge_request(self, project: str | int, *, iid: int, title: str, source_branch: str,
                              target_branch: str, sha: str, author: str, created_at: datetime,
                              merge_commit_sha: str = "", merged_at: datetime | None = None) -> MergeRequest:
        """An MR this GitLab held before it started (merged when `merge_commit_sha` is given, else open): what a
        restarted imitation keeps of the past. No hook is sent; later MRs are numbered after it."""
        with self.lock:
            target = self.project(project)
            user = self.user(author)
            mr = MergeRequest(
                id=self.next_mr_id, iid=iid, project=target, title=title, description="", author=user,
                source_branch=source_branch, target_branch=target_branch, sha=sha,
                base_sha=target.branches.get(target_branch, ZERO_SHA), created_at=created_at,
                updated_at=merged_at or created_at, state="merged" if merge_commit_sha else "opened",
                merge_commit_sha=merge_commit_sha or None, merged_by=user if merge_commit_sha else None,
                merged_at=merged_at if merge_commit_sha else None,
            )
            self.next_mr_id += 1
            target.next_iid = max(target.next_iid, iid + 1)
            target.merge_requests[iid] = mr
            return mr

    def set_conflict(self, project: str | int, iid: int, conflict: bool = True) -> None:
        with self.lock:
            mr = self.merge_request(project, iid)
            mr.conflict, mr.updated_at = conflict, now()

    def close(self, project: str | int, iid: int, *, user: str | None = None) -> None:
        with self.lock:
            mr = self.merge_request(project, iid)
            self.change_state(mr, self.user(user) if user else self.first_user(), "close")

    def merge(self, project: str | int, iid: int, *, user: str | None = None) -> MergeRequest:
        """Merge in GitLab's web UI, outside the portal: no checks, the hooks fire."""
        with self.lock:
            mr = self.merge_request(project, iid)
            self.do_merge(mr, self.user(user) if user else self.first_user(), {})
            return mr

    def fail(self, status: int = 503, **where) -> Fault:
        """Answer `status` instead (for `times` requests, or until `heal()`); `method=`/`path_contains=` narrow it."""
        return self.add_fault(Fault(status=status, **where))

    def unreachable(self, **where) -> Fault:
        return self.add_fault(Fault(drop=True, **where))

    def slow(self, seconds: float, **where) -> Fault:
        return self.add_fault(Fault(delay=seconds, **where))

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()

    def saw(self, method: str, path_start: str) -> bool:
        return any(m == method and p.startswith(path_start) for m, p in list(self.requests_seen))

    def wait_for_hooks(self, timeout: float = 10) -> bool:
        """Wait until every queued webhook delivery has been attempted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def redeliver(self, delivery: Delivery) -> Delivery:
        """Send a delivery again with the same headers, as GitLab's "Resend request" does."""
        again = Delivery(url=delivery.url, event=delivery.event, headers=dict(delivery.headers), body=delivery.body)
        with self.lock:
            self.deliveries.append(again)
        self.outbox.put(again)
        return again

    # --- model helpers ------------------------------------------------------------------------------

    def user(self, username: str) -> User:
        return self.users.get(username) or self.add_user(username)

    def first_user(self) -> User:
        return next(iter(self.users.values()))

    def create_mr(self, project: Project, author: User, params: dict) -> MergeRequest:
        missing = [name for name in ("source_branch", "target_branch", "title") if not params.get(name)]
        if missing:
            raise ApiError(400, {"error": ", ".join(f"{name} is missing" for name in missing)})
        source, target = str(params["source_branch"]), str(params["target_branch"])
        if source == target:
            raise ApiError(409, {"message": ["You can't use same project/branch for source and target"]})
        for branch, role in ((source, "Source"), (target, "Target")):
            if branch not in project.branches:
                raise ApiError(409, {"message": [f'{role} branch "{branch}" does not exist']})
        for other in project.merge_requests.values():
            if other.state == "opened" and (other.source_branch, other.target_branch) == (source, target):
                raise ApiError(409, {"message": [
                    f"Another open merge request already exists for this source branch: !{other.iid}"]})
        moment = now()
        mr = MergeRequest(
            id=self.next_mr_id, iid=project.next_iid, project=project, title=str(params["title"]),
            description=str(params.get("description") or ""), author=author, source_branch=source,
            target_branch=target, sha=project.branches[source], base_sha=project.branches[target],
            created_at=moment, updated_at=moment, draft=str(params["title"]).lower().startswith(("draft:", "[draft]")),
            should_remove_source_branch=as_bool(params.get("remove_source_branch")),
            squash=bool(as_bool(params.get("squash"))),
        )
        self.next_mr_id += 1
        project.next_iid += 1
        project.merge_requests[mr.iid] = mr
        self.emit_mr(mr, author, "open")
        return mr

    def change_state(self, mr: MergeRequest, user: User, event: str) -> None:
        if event == "close" and mr.state == "opened":
            mr.state, mr.closed_by, mr.closed_at = "closed", user, now()
        elif event == "reopen" and mr.state == "closed":
            mr.state, mr.closed_by, mr.closed_at = "opened", None, None
        else:
            return
        mr.updated_at = now()
        self.emit_mr(mr, user, event, changes={"state_id": {"previous": STATE_IDS["opened" if event == "close"
                                                                                        else "closed"],
                                                            "current": STATE_IDS[mr.state]}})

    def do_merge(self, mr: MergeRequest, user: User, params: dict) -> None:
        project = mr.project
        message = str(params.get("merge_commit_message") or
                      f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\nSee merge request !{mr.iid}")
        before = project.branches.get(mr.target_branch, ZERO_SHA)
        merge_sha = fake_sha(project.path, "merge", mr.iid, before, mr.sha)
        commit = project.commits.setdefault(merge_sha, Commit(merge_sha, message, user.name, user.email, now()))
        project.branches[mr.target_branch] = merge_sha
        remove = as_bool(params.get("should_remove_source_branch"))
        if remove is not None:
            mr.should_remove_source_branch = remove
        mr.state, mr.merge_commit_sha, mr.merged_by = "merged", merge_sha, user
        mr.merged_at = mr.updated_at = now()
        if mr.should_remove_source_branch:
            project.branches.pop(mr.source_branch, None)
        self.emit(project, "Push Hook",
                  self.push_payload(project, user, mr.target_branch, before, merge_sha, [commit]))
        self.emit_mr(mr, user, "merge", changes={"state_id": {"previous": 1, "current": 3}})

    # --- HTTP ---------------------------------------------------------------------------------------

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.applies(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def handle(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        with self.lock:
            self.requests_seen.append((method, raw_path))
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if segments[:2] != ["api", "v4"]:
            return answer(404, {"message": "404 Not Found"})
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                return answer(400, {"error": "The provided content-type is not supported or the body is not JSON"})
            if isinstance(data, dict):
                params.update(data)  # as Grape: the query string and the body are one set of parameters
        try:
            with self.lock:
                user = self.authenticate(headers, params)
                status, payload, extra = self.route(method, segments[2:], params, user, parts.path)
        except ApiError as exc:
            return answer(exc.status, exc.body)
        return answer(status, payload, extra)

    def authenticate(self, headers, params: dict) -> User:
        token = headers.get("PRIVATE-TOKEN") or ""
        bearer = headers.get("Authorization") or ""
        if not token and bearer.lower().startswith("bearer "):
            token = bearer[7:]
        username = next((name for known, name in self.tokens.items() if hmac.compare_digest(known, token)), None)
        if not token or username is None:
            raise unauthorized()
        user = self.users[username]
        sudo = headers.get("Sudo") or params.pop("sudo", None)
        if sudo:
            if not user.is_admin:
                raise ApiError(403, {"message": "403 Forbidden - Must be admin to use sudo"})
            user = self.users.get(str(sudo))
            if user is None:
                raise ApiError(404, {"message": "404 User Not Found"})
        return user

    def route(self, method: str, segments: list[str], params: dict, user: User, path: str):
        if segments == ["user"] and method == "GET":
            return 200, self.user_json(user, full=True), {}
        if segments == ["version"] and method == "GET":
            return 200, {"version": GITLAB_VERSION, "revision": GITLAB_REVISION,
                         "kas": {"enabled": False, "externalUrl": None, "version": None}, "enterprise": True}, {}
        if len(segments) < 2 or segments[0] != "projects":
            raise not_found()
        try:
            project = self.project(segments[1])
        except KeyError:
            raise not_found("Project Not Found") from None
        self.catch_up(project)
        rest = segments[2:]
        if rest == [] and method == "GET":
            return 200, self.project_json(project), {}
        if rest[:2] == ["repository", "branches"] and method == "GET":
            if len(rest) == 2:
                rows = [self.branch_json(project, name) for name in sorted(project.branches)]
                return self.page(rows, params, path)
            name = "/".join(rest[2:])
            if name not in project.branches:
                raise not_found("Branch Not Found")
            return 200, self.branch_json(project, name), {}
        if rest == ["merge_requests"]:
            if method == "GET":
                return self.page([self.mr_json(mr, user) for mr in self.matching_mrs(project, params)], params, path)
            if method == "POST":
                return 201, self.mr_json(self.create_mr(project, user, params), user), {}
        if len(rest) < 2 or rest[0] != "merge_requests" or not rest[1].isdigit():
            raise not_found()
        mr = project.merge_requests.get(int(rest[1]))
        if mr is None:
            raise not_found()
        action = rest[2:]
        if action == [] and method == "GET":
            return 200, self.mr_json(mr, user), {}
        if action == [] and method == "PUT":
            return 200, self.mr_json(self.update_mr(mr, user, params), user), {}
        if action == ["approvals"] and method == "GET":
            return 200, self.approvals_json(mr, user), {}
        if action == ["approve"] and method == "POST":
            return 201, self.approve(mr, user, params), {}
        if action == ["unapprove"] and method == "POST":
            if user not in mr.approved_by:
                raise not_found()
            mr.approved_by.remove(user)
            self.emit_mr(mr, user, "unapproved")
            return 201, self.approvals_json(mr, user), {}
        if action == ["merge"] and method == "PUT":
            return 200, self.merge_via_api(mr, user, params), {}
        raise not_found()

    def matching_mrs(self, project: Project, params: dict) -> list[MergeRequest]:
        state = params.get("state") or "all"
        if state != "all" and state not in MR_STATES:
            raise ApiError(400, {"error": "state does not have a valid value"})
        rows = [mr for mr in project.merge_requests.values()
                if (state == "all" or mr.state == state)
                and mr.source_branch == params.get("source_branch", mr.source_branch)
                and mr.target_branch == params.get("target_branch", mr.target_branch)]
        reverse = (params.get("sort") or "desc") == "desc"
        key = params.get("order_by") or "created_at"
        if key not in ("created_at", "updated_at"):
            raise ApiError(400, {"error": "order_by does not have a valid value"})
        return sorted(rows, key=lambda mr: (getattr(mr, key), mr.iid), reverse=reverse)

    def update_mr(self, mr: MergeRequest, user: User, params: dict) -> MergeRequest:
        for name in ("title", "description"):
            if name in params:
                setattr(mr, name, str(params[name]))
        event = params.get("state_event")
        if event in ("close", "reopen"):
            self.change_state(mr, user, event)
        elif "title" in params or "description" in params:
            mr.updated_at = now()
            self.emit_mr(mr, user, "update")
        return mr

    def approve(self, mr: MergeRequest, user: User, params: dict) -> dict:
        check_sha(mr, params)
        refused = (
            mr.state != "opened"
            or user in mr.approved_by
            or (user.id == mr.author.id and not mr.project.author_can_approve)
        )
        if refused:
            raise unauthorized()  # what ApprovalService's failure becomes in the API
        mr.approved_by.append(user)
        mr.updated_at = now()
        self.emit_mr(mr, user, "approved")
        return self.approvals_json(mr, user)

    def merge_via_api(self, mr: MergeRequest, user: User, params: dict) -> dict:
        # The order of lib/api/merge_requests.rb: permission, mergeability, then the sha.
        automatically = bool(as_bool(params.get("merge_when_pipeline_succeeds") or
                                     params.get("auto_merge")))
        mergeable = mr.detailed_merge_status == "mergeable"
        if mr.state != "opened" or (not mergeable and not automatically):
            raise ApiError(405, {"message": "405 Method Not Allowed"})
        if not mergeable:
            raise ApiError(422, {"message": "Branch cannot be merged"})
        check_sha(mr, params)
        self.do_merge(mr, user, params)
        return self.mr_json(mr, user)

    def page(self, rows: list, params: dict, path: str) -> tuple[int, list, dict[str, str]]:
        per_page = min(max(as_int(params.get("per_page"), DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
        page = max(as_int(params.get("page"), 1), 1)
        pages = max(math.ceil(len(rows) / per_page), 1)
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(rows)),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        query = {k: v for k, v in params.items() if k not in ("page", "per_page") and not isinstance(v, dict | list)}

        def link(number: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"'

        links = ([link(page + 1, "next")] if page < pages else []) + ([link(page - 1, "prev")] if page > 1 else [])
        links += [link(1, "first"), link(pages, "last")]
        headers["Link"] = ", ".join(links)
        return 200, rows[(page - 1) * per_page: page * per_page], headers

    # --- JSON shapes (see ../shared/fixtures/gitlab/merge_request_get.gitlab-com-2019.json) ----------------

    def user_json(self, user: User | None, *, full: bool = False) -> dict | None:
        if user is None:
            return None
        data = {"id": user.id, "username": user.username, "name": user.name, "state": "active", "locked": False,
                "avatar_url": f"https://secure.gravatar.com/avatar/{fake_sha(user.username)[:32]}?s=80&d=identicon",
                "web_url": f"{self.url}/{user.username}"}
        if full:
            data.update({"created_at": "2024-01-02T09:00:00.000Z", "bio": "", "public_email": None,
                         "email": user.email, "is_admin": user.is_admin, "bot": False, "two_factor_enabled": False,
                         "can_create_project": True, "can_create_group": True, "external": False})
        return data

    def project_json(self, project: Project) -> dict:
        namespace = project.namespace
        return {
            "id": project.id, "name": project.name, "path": project.name, "path_with_namespace": project.path,
            "name_with_namespace": project.path.replace("/", " / "), "description": "",
            "default_branch": project.default_branch, "visibility": "private", "web_url": project.web_url,
            "http_url_to_repo": f"{project.web_url}.git", "ssh_url_to_repo": self.ssh_url(project),
            "namespace": {"id": 1, "name": namespace.rsplit("/", 1)[-1], "path": namespace.rsplit("/", 1)[-1],
                          "kind": "group", "full_path": namespace, "web_url": f"{self.url}/groups/{namespace}"},
            "created_at": "2024-01-02T09:00:00.000Z", "last_activity_at": iso(now()),
            "merge_requests_enabled": True, "merge_method": "merge",
            "approvals_before_merge": project.approvals_required,
            "merge_requests_author_approval": project.author_can_approve, "archived": False, "empty_repo": False,
        }

    def ssh_url(self, project: Project) -> str:
        host = urlsplit(self.url).hostname
        return f"git@{host}:{project.path}.git"

    def branch_json(self, project: Project, name: str) -> dict:
        commit = project.commits[project.branches[name]]
        return {
            "name": name, "merged": False, "protected": name == project.default_branch,
            "default": name == project.default_branch, "developers_can_push": False, "developers_can_merge": False,
            "can_push": True, "web_url": f"{project.web_url}/-/tree/{quote(name)}",
            "commit": {
                "id": commit.sha, "short_id": commit.sha[:8], "title": commit.message.splitlines()[0],
                "message": commit.message, "author_name": commit.author_name, "author_email": commit.author_email,
                "authored_date": iso(commit.timestamp), "committer_name": commit.author_name,
                "committer_email": commit.author_email, "committed_date": iso(commit.timestamp),
                "created_at": iso(commit.timestamp), "parent_ids": [],
                "web_url": f"{project.web_url}/-/commit/{commit.sha}",
            },
        }

    def mr_json(self, mr: MergeRequest, viewer: User) -> dict:
        project = mr.project
        return {
            "id": mr.id, "iid": mr.iid, "project_id": project.id, "title": mr.title, "description": mr.description,
            "state": mr.state, "created_at": iso(mr.created_at), "updated_at": iso(mr.updated_at),
            "merged_by": self.user_json(mr.merged_by), "merge_user": self.user_json(mr.merged_by),
            "merged_at": iso(mr.merged_at), "closed_by": self.user_json(mr.closed_by), "closed_at": iso(mr.closed_at),
            "target_branch": mr.target_branch, "source_branch": mr.source_branch, "user_notes_count": 0,
            "upvotes": 0, "downvotes": 0, "author": self.user_json(mr.author), "assignees": [], "assignee": None,
            "reviewers": [], "source_project_id": project.id, "target_project_id": project.id, "labels": [],
            "draft": mr.draft, "work_in_progress": mr.draft, "milestone": None, "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged" if not mr.conflict else "cannot_be_merged",
            "detailed_merge_status": mr.detailed_merge_status, "merge_after": None, "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha, "squash_commit_sha": None, "discussion_locked": None,
            "should_remove_source_branch": mr.should_remove_source_branch, "force_remove_source_branch": False,
            "prepared_at": iso(mr.created_at), "reference": f"!{mr.iid}",
            "references": {"short": f"!{mr.iid}", "relative": f"!{mr.iid}", "full": f"{project.path}!{mr.iid}"},
            "web_url": mr.web_url,
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "squash": mr.squash, "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0}, "has_conflicts": mr.conflict,
            "blocking_discussions_resolved": True, "subscribed": False, "changes_count": "1",
            "latest_build_started_at": None, "latest_build_finished_at": None,
            "first_deployed_to_production_at": None, "pipeline": None, "head_pipeline": None,
            "diff_refs": {"base_sha": mr.base_sha, "head_sha": mr.sha, "start_sha": mr.base_sha},
            "merge_error": None, "first_contribution": False,
            "user": {"can_merge": True}, "approvals_before_merge": project.approvals_required,
        }

    def approvals_json(self, mr: MergeRequest, viewer: User) -> dict:
        return {
            "id": mr.id, "iid": mr.iid, "project_id": mr.project.id, "title": mr.title,
            "description": mr.description, "state": mr.state, "created_at": iso(mr.created_at),
            "updated_at": iso(mr.updated_at), "merge_status": "can_be_merged",
            "approved": mr.approvals_left == 0 and bool(mr.approved_by) or mr.project.approvals_required == 0,
            "approvals_required": mr.project.approvals_required, "approvals_left": mr.approvals_left,
            "require_password_to_approve": False,
            "approved_by": [{"user": self.user_json(user)} for user in mr.approved_by],
            "suggested_approvers": [], "approvers": [], "approver_groups": [],
            "user_has_approved": viewer in mr.approved_by,
            "user_can_approve": viewer not in mr.approved_by and (viewer.id != mr.author.id
                                                                  or mr.project.author_can_approve),
            "approval_rules_left": [], "has_approval_rules": mr.project.approvals_required > 0,
            "merge_request_approvers_available": True, "multiple_approval_rules_available": True,
            "invalid_approvers_rules": [],
        }

    # --- webhooks (see ../shared/fixtures/gitlab/*_event.gitlab-docs.json) --------------------------------

    def hook_project_json(self, project: Project) -> dict:
        return {
            "id": project.id, "name": project.name, "description": "", "web_url": project.web_url,
            "avatar_url": None, "git_ssh_url": self.ssh_url(project), "git_http_url": f"{project.web_url}.git",
            "namespace": project.namespace.rsplit("/", 1)[-1], "visibility_level": 0,
            "path_with_namespace": project.path, "default_branch": project.default_branch, "ci_config_path": "",
            "homepage": project.web_url, "url": self.ssh_url(project), "ssh_url": self.ssh_url(project),
            "http_url": f"{project.web_url}.git",
        }

    def hook_repository_json(self, project: Project) -> dict:
        return {"name": project.name, "url": self.ssh_url(project), "description": "", "homepage": project.web_url,
                "git_http_url": f"{project.web_url}.git", "git_ssh_url": self.ssh_url(project),
                "visibility_level": 0}

    def hook_commit_json(self, project: Project, commit: Commit) -> dict:
        return {"id": commit.sha, "message": commit.message, "title": commit.message.splitlines()[0],
                "timestamp": commit.timestamp.isoformat(timespec="seconds"),
                "url": f"{project.web_url}/-/commit/{commit.sha}",
                "author": {"name": commit.author_name, "email": commit.author_email}}

    def push_payload(self, project: Project, user: User, branch: str, before: str, after: str,
                     commits: list[Commit]) -> dict:
        return {
            "object_kind": "push", "event_name": "push", "before": before, "after": after,
            "ref": f"refs/heads/{branch}", "ref_protected": branch == project.default_branch,
            "checkout_sha": after if after != ZERO_SHA else None, "message": None,
            "user_id": user.id, "user_name": user.name, "user_username": user.username, "user_email": user.email,
            "user_avatar": self.user_json(user)["avatar_url"], "project_id": project.id,
            "project": self.hook_project_json(project), "repository": self.hook_repository_json(project),
            "commits": [{**self.hook_commit_json(project, c), "added": [], "modified": ["app/views.py"],
                         "removed": []} for c in commits[-20:]],
            "total_commits_count": len(commits),
        }

    def mr_payload(self, mr: MergeRequest, user: User, action: str, *, changes: dict | None = None,
                   extra: dict | None = None) -> dict:
        project = mr.project
        commit = project.commits.get(mr.sha) or Commit(mr.sha, "", "", "", mr.updated_at)
        attributes = {
            "id": mr.id, "iid": mr.iid, "target_branch": mr.target_branch, "source_branch": mr.source_branch,
            "source_project_id": project.id, "author_id": mr.author.id, "assignee_ids": [], "assignee_id": None,
            "reviewer_ids": [], "title": mr.title, "created_at": iso(mr.created_at), "updated_at": iso(mr.updated_at),
            "last_edited_at": None, "last_edited_by_id": None, "milestone_id": None, "state_id": STATE_IDS[mr.state],
            "state": mr.state, "blocking_discussions_resolved": True, "work_in_progress": mr.draft,
            "draft": mr.draft, "first_contribution": False,
            "merge_status": "can_be_merged" if not mr.conflict else "cannot_be_merged",
            "target_project_id": project.id, "description": mr.description, "prepared_at": iso(mr.created_at),
            "total_time_spent": 0, "time_change": 0, "human_total_time_spent": None, "human_time_change": None,
            "human_time_estimate": None, "url": mr.web_url, "source": self.hook_project_json(project),
            "target": self.hook_project_json(project), "last_commit": self.hook_commit_json(project, commit),
            "labels": [], "action": action, "detailed_merge_status": mr.detailed_merge_status,
            "merge_commit_sha": mr.merge_commit_sha, **(extra or {}),
        }
        return {
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {"id": user.id, "name": user.name, "username": user.username,
                     "avatar_url": self.user_json(user)["avatar_url"], "email": user.email},
            "project": self.hook_project_json(project), "repository": self.hook_repository_json(project),
            "object_attributes": attributes, "labels": [],
            "changes": changes or {"updated_at": {"previous": None, "current": iso(mr.updated_at)}},
            "assignees": [], "reviewers": [],
        }

    def emit_mr(self, mr: MergeRequest, user: User, action: str, **kwargs) -> None:
        self.emit(mr.project, "Merge Request Hook", self.mr_payload(mr, user, action, **kwargs))

    def emit(self, project: Project, event: str, payload: dict) -> None:
        wanted = "push_events" if event == "Push Hook" else "merge_requests_events"
        body = json.dumps(payload).encode()
        for hook in project.hooks:
            if not getattr(hook, wanted):
                continue
            headers = {
                "Content-Type": "application/json", "User-Agent": f"GitLab/{GITLAB_VERSION}",
                "X-Gitlab-Event": event, "X-Gitlab-Token": hook.token, "X-Gitlab-Instance": self.url,
                "X-Gitlab-Webhook-UUID": hook.uuid, "X-Gitlab-Event-UUID": str(uuid.uuid4()),
                "Idempotency-Key": str(uuid.uuid4()),
            }
            delivery = Delivery(url=hook.url, event=event, headers=headers, body=body)
            with self.lock:
                self.deliveries.append(delivery)
            self.outbox.put(delivery)

    def deliver_forever(self) -> None:
        session = requests.Session()
        while True:
            delivery = self.outbox.get()
            try:
                if delivery is None:
                    return
                delivery.attempts += 1
                try:
                    response = session.post(delivery.url, data=delivery.body, headers=delivery.headers,
                                            timeout=HOOK_TIMEOUT_SECONDS)
                    delivery.status = response.status_code
                except requests.RequestException as exc:
                    delivery.error = type(exc).__name__
                    logger.warning("simulated GitLab: webhook to %s failed (%s)", delivery.url, delivery.error)
            finally:
                self.outbox.task_done()


def check_sha(mr: MergeRequest, params: dict) -> None:
    sha = params.get("sha")
    if sha and sha != mr.sha:
        raise ApiError(409, {"message": f"SHA does not match HEAD of source branch: {mr.sha}"})


def as_bool(value) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on")


def as_int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def answer(status: int, payload, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


FAULT_PAGES = {
    500: ("application/json", b'{"message":"500 Internal Server Error"}'),
    502: ("text/html", b"<html><body><h1>502 Bad Gateway</h1>GitLab is not responding.</body></html>"),
    503: ("text/html", b"<html><body><h1>503 Service Unavailable</h1></body></html>"),
    504: ("text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>"),
}


class Handler(BaseHTTPRequestHandler):
    server_version = "nginx"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait between them

    def do_GET(self):  # noqa: N802 - the http.server API
        self.answer("GET")

    def do_POST(self):  # noqa: N802
        self.answer("POST")

    def do_PUT(self):  # noqa: N802
        self.answer("PUT")

    def do_DELETE(self):  # noqa: N802
        self.answer("DELETE")

    def answer(self, method: str) -> None:
        simulated: SimulatedGitLab = self.server.simulated
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = simulated.fault_for(method, urlsplit(self.path).path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True  # no answer at all: the client's connection is reset
                return
        if fault is not None and fault.status:
            message = json.dumps({"message": fault.message or str(fault.status)}).encode()
            content_type, text = ("application/json", message) if fault.message else FAULT_PAGES.get(
                fault.status, ("application/json", message))
            status, headers = fault.status, {"Content-Type": content_type}
            if status == 429:
                headers["Retry-After"] = "1"  # GitLab's rate limiter says when to come back
        else:
            try:
                status, headers, text = simulated.handle(method, self.path, self.headers, body)
            except Exception:  # noqa: BLE001 - answer 500 as GitLab would, keep serving
                logger.exception("simulated GitLab: error on %s %s", method, self.path)
                status, headers, text = 500, {"Content-Type": "application/json"}, FAULT_PAGES[500][1]
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("X-Request-Id", secrets.token_hex(13))
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a `slow` fault): nobody to answer

    def log_message(self, format, *args):  # noqa: A002 - the http.server API
        logger.debug("simulated GitLab: " + format, *args)
