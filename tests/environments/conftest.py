"""The real container engine and registry that tests/services/container_engine.sh starts (`make test` runs it)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ENGINE_ENV = Path(os.environ.get("PORTAL_TEST_ENGINE_ENV", "/run/portal-test-engine/env"))
VERSIONS = ("v1", "v2", "v3", "crash")


@dataclass(frozen=True)
class TestEngine:
    docker_host: str
    registry: str
    user: str
    password: str
    repository: str
    digests: dict[str, str]

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.docker_host)


def load_engine() -> TestEngine | str:
    """The engine container_engine.sh started, or why there is none."""
    if not ENGINE_ENV.exists():
        return (f"no container engine: {ENGINE_ENV} is missing (run tests/services/container_engine.sh as root, "
                "or `make test`)")
    values = dict(line.split("=", 1) for line in ENGINE_ENV.read_text().splitlines() if "=" in line)
    found = TestEngine(
        docker_host=values["PORTAL_TEST_DOCKER_HOST"], registry=values["PORTAL_TEST_REGISTRY"],
        user=values["PORTAL_TEST_REGISTRY_USER"], password=values["PORTAL_TEST_REGISTRY_PASSWORD"],
        repository=values["PORTAL_TEST_APP_REPOSITORY"],
        digests={version: values[f"PORTAL_TEST_APP_{version.upper()}"] for version in VERSIONS},
    )
    try:
        found.client().ping()
    except Exception as error:  # noqa: BLE001 - any failure means the same: no engine to test against
        return (f"the container engine at {found.docker_host} does not answer ({error}): run "
                "tests/services/container_engine.sh as root")
    return found


@pytest.fixture(scope="session")
def engine() -> TestEngine:
    """podman's Docker API, the loopback registry and the app's digests; skips, saying why, when they are absent."""
    found = load_engine()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stage(engine, db):
    """A project and an environment of their own on the engine (a free service port), and their containers
    removed afterwards."""
    from tests.factories import EnvironmentFactory, ProjectFactory

    suffix = uuid.uuid4().hex[:8]
    project = ProjectFactory(slug=f"app-{suffix}")
    port = free_port()
    environment = EnvironmentFactory(
        slug=f"stage-{suffix}", docker_host_url=engine.docker_host, registry=engine.registry,
        registry_username=engine.user, registry_password=engine.password,
        health_url=f"http://127.0.0.1:{port}/healthz",
    )
    yield Stage(engine=engine, project=project, environment=environment, port=port)
    client = engine.client()
    for container in client.containers.list(all=True, filters={"label": f"portal.environment={environment.slug}"}):
        container.remove(force=True)


@dataclass
class Stage:
    engine: TestEngine
    project: object
    environment: object
    port: int

    def release(self, version: str, *, digest: str | None = None, repository: str | None = None):
        """A green run of the project whose image is the app in that version."""
        from tests.factories import ArtifactFactory, RunFactory

        run = RunFactory(project=self.project)
        ArtifactFactory(run=run, repository=repository or self.engine.repository, tag=version,
                        digest=self.engine.digests[version] if digest is None else digest)
        return run

    def serving(self) -> str | None:
        """What answers on the service port: "app v1", ..., or None when nothing does."""
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/", timeout=3).text.strip()
        except requests.RequestException:
            return None

    def containers(self, **labels):
        filters = [f"portal.environment={self.environment.slug}"] + [f"portal.{k}={v}" for k, v in labels.items()]
        return self.engine.client().containers.list(all=True, filters={"label": filters})


# ---- AWS: moto's server over HTTP -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's server (`moto_server`, from moto[server] in requirements-dev.txt) on a free loopback port, for the whole
    session: boto3 talks to it over HTTP exactly as to AWS. Nothing to install or start beforehand, so it never
    skips."""
    import subprocess
    import sys
    import time

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/moto-api/data.json", timeout=2)
            break
        except requests.RequestException:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto_server did not start on port {port}") from None
            time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def moto_aws(moto_endpoint, settings, monkeypatch):
    """The portal pointed at moto (AWS_ENDPOINT_URL), with dummy credentials from the environment as boto3 reads
    them; moto forgets everything after the test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings.AWS_ENDPOINT_URL = moto_endpoint
    settings.AWS_REGION = "eu-west-1"
    yield moto_endpoint
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
