"""The portal's web and worker images build from the repository root and run: on the test engine, from a Python
3.11 base made locally by tests/services/python_base.sh (`make test-services`), standing in for the pinned upstream
python:3.11-slim-bookworm that no public registry here can serve."""

import re
import secrets
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from tests.deploy_assets.conftest import REPO_ROOT
from tests.environments.conftest import free_port, load_engine

PYTHON_BASE = "localhost/portal-test/python:3.11-bookworm"
# What the portal needs to start in production mode: SQLite in the image's data volume, no DEBUG.
PRODUCTION_ENVIRONMENT = {"DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def engine():
    found = load_engine()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def client(engine):
    client = engine.client()
    if not client.images.list(name=PYTHON_BASE):
        pytest.skip(f"no local Python base {PYTHON_BASE}: run tests/services/python_base.sh as root (make test)")
    return client


@pytest.fixture(scope="module")
def built(engine, client):
    """Both images, built from the repository root on the engine as `docker build --target` would, with podman's
    own client and `--layers`: the wheels' layers python_base.sh cached are reused, so only the code and the
    static files are built again unless requirements.txt changed. Removed afterwards."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("no podman client: run tests/services/container_engine.sh as root (make test)")
    suffix = uuid.uuid4().hex[:8]
    images = {}
    for target in ("web", "worker"):
        tag = f"localhost/portal-test/portal-{target}:test-{suffix}"
        done = subprocess.run(
            [podman, "--url", engine.docker_host, "build",
             "--layers", "--format", "docker", "--target", target, "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}",
             "--tag", tag, "--file", str(REPO_ROOT / "Dockerfile"), str(REPO_ROOT)],
            capture_output=True, text=True, timeout=1800, check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        images[target] = client.images.get(tag)
    yield images
    for image in images.values():
        client.images.remove(image.id, force=True)


def start(client, image, **options):
    environment = {**PRODUCTION_ENVIRONMENT, "SECRET_KEY": secrets.token_urlsafe(48)}
    return client.containers.run(image.id, detach=True, environment=environment, **options)


def wait_for(url: str, deadline_seconds: float = 180) -> requests.Response:
    """The first answer from url: gunicorn listens before its workers have imported Django, so a request may be
    refused or wait at first (long on a busy machine)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return requests.get(url, timeout=30)
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def data(client, built):
    """The data volume (SQLite, raw reports), migrated by a one-off container as compose's `migrate` does."""
    volume = client.volumes.create(f"portal-test-data-{uuid.uuid4().hex[:8]}")
    migrate = start(client, built["web"], command=["python", "manage.py", "migrate", "--no-input", "-v0"],
                    volumes={volume.name: {"bind": "/var/lib/portal", "mode": "rw"}})
    try:
        assert migrate.wait(timeout=180)["StatusCode"] == 0, migrate.logs().decode()[-2000:]
    finally:
        migrate.remove(force=True)
    yield {volume.name: {"bind": "/var/lib/portal", "mode": "rw"}}
    volume.remove(force=True)


@pytest.fixture
def web(client, built, data):
    port = free_port()
    container = start(client, built["web"], ports={"8000/tcp": ("127.0.0.1", port)}, volumes=data)
    yield container, f"http://127.0.0.1:{port}"
    container.remove(force=True)


def test_it_answers_healthz_from_gunicorn_as_an_unprivileged_user(web):
    container, url = web
    answer = wait_for(f"{url}/healthz")
    assert answer.status_code == 200, container.logs().decode()[-2000:]
    assert answer.json() == {"status": "ok", "database": "up"}
    exit_code, output = container.exec_run(["id", "-u"])
    assert (exit_code, output.decode().strip()) == (0, "10001")
    # The image's own HEALTHCHECK command (engines that honour it run exactly this) succeeds too.
    assert container.exec_run(healthcheck_command(container)).exit_code == 0


def healthcheck_command(container) -> list[str]:
    config = container.image.attrs.get("Config") or {}
    test = (config.get("Healthcheck") or container.attrs["Config"].get("Healthcheck") or {}).get("Test")
    assert test and test[0] == "CMD", f"no HEALTHCHECK in the image: {test}"
    return test[1:]


def test_it_serves_the_collected_static_files_through_whitenoise(web):
    container, url = web
    assert wait_for(f"{url}/healthz").status_code == 200
    page = requests.get(f"{url}/accounts/login/", timeout=30)
    assert page.status_code == 200
    stylesheet = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, "the login page links no hashed stylesheet: were the static files collected?"
    static = requests.get(url + stylesheet.group(1), headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert static.status_code == 200
    assert "max-age=315360000" in static.headers["Cache-Control"] and static.headers["Content-Encoding"] == "gzip"


def test_it_refuses_to_start_without_a_secret_key_and_says_why(client, built):
    container = client.containers.run(built["web"].id, detach=True, environment={"DEBUG": "false"})
    try:
        assert container.wait(timeout=180)["StatusCode"] != 0
        assert "SECRET_KEY is not set" in container.logs().decode()
    finally:
        container.remove(force=True, v=True)


def test_the_worker_image_runs_the_tasks_it_is_given(client, built, data):
    # qcluster on the ORM broker over SQLite in the data volume, and check_worker beside it in the same container.
    container = start(client, built["worker"], volumes=data)
    try:
        exit_code, output = container.exec_run(["python", "manage.py", "check_worker", "--timeout", "90"])
        assert exit_code == 0, output.decode() + container.logs().decode()[-2000:]
        assert "Worker ran the diagnostic task" in output.decode()
    finally:
        container.remove(force=True)
