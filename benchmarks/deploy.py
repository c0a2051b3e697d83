"""A portal deployment of v2 over v1 against the same steps scripted directly with the docker SDK.

Both pull v2 by digest with the registry's credentials, start a trial container on a free port, probe it over
HTTP, stop v1, start v2 on the service port, probe again and remove v1 and the trial. The portal's side goes through
the request and the django-q2 task (inline, as the test settings run tasks), so its overhead is the database work:
the request, the lock, the step log and the rollback bookkeeping. Each round deploys v1 first (not timed) on a fresh
port; the two sides alternate which goes first. Needs the test engine (tests/services/container_engine.sh, as root).

    .venv/bin/python benchmarks/deploy.py [--rounds 5]
"""

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, bench_line, setup_django, throwaway_database  # noqa: E402

TARGET = 1.2


def wait_healthy(url: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            if requests.get(url, timeout=2, allow_redirects=False).status_code < 400:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"{url} not healthy")
        time.sleep(0.2)


def direct(engine, client, port: int) -> float:
    """The steps by hand: v1 serving on `port`, then v2 over it. Returns the seconds of the v2 part."""
    auth = {"username": engine.user, "password": engine.password}
    label = {"bench": uuid.uuid4().hex[:8]}

    def pull(version):
        digest = engine.digests[version]
        for event in client.api.pull(engine.repository, tag=digest, auth_config=auth, stream=True, decode=True):
            if event.get("error"):
                raise RuntimeError(event["error"])
        return client.images.get(f"{engine.repository}@{digest}")

    old = client.containers.run(pull("v1").id, detach=True, labels=label, ports={"8080/tcp": port})
    wait_healthy(f"http://127.0.0.1:{port}/healthz")
    started = time.perf_counter()
    image = pull("v2")
    trial = client.containers.run(image.id, detach=True, labels=label, ports={"8080/tcp": None})
    trial.reload()
    wait_healthy(f"http://127.0.0.1:{trial.ports['8080/tcp'][0]['HostPort']}/healthz")
    new = client.containers.create(image.id, labels=label, ports={"8080/tcp": port},
                                   restart_policy={"Name": "unless-stopped"})
    old.stop()
    new.start()
    wait_healthy(f"http://127.0.0.1:{port}/healthz")
    old.remove(force=True)
    trial.remove(force=True)
    elapsed = time.perf_counter() - started
    new.remove(force=True)
    return elapsed


def portal(stage) -> float:
    """v1 then v2 through the portal's request and task. Returns the seconds of the v2 part."""
    from environments.deployments import request_deployment
    from environments.models import DeploymentStatus

    def deploy(version):
        deployment = request_deployment(project=stage.project, environment=stage.environment,
                                        run=stage.release(version), actor_label="benchmark")
        deployment.refresh_from_db()
        if deployment.status != DeploymentStatus.SUCCESS:
            raise RuntimeError(deployment.step_log)

    deploy("v1")
    started = time.perf_counter()
    deploy("v2")
    elapsed = time.perf_counter() - started
    for container in stage.containers():
        container.remove(force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_django()
    sys.path.insert(0, str(REPO_ROOT))
    from tests.environments.conftest import Stage, free_port, load_engine
    from tests.factories import EnvironmentFactory, ProjectFactory

    engine = load_engine()
    if isinstance(engine, str):
        sys.exit(engine)
    client = engine.client()
    portal_times, direct_times = [], []
    with throwaway_database():
        for round_ in range(args.rounds):
            suffix = uuid.uuid4().hex[:8]
            port = free_port()
            stage = Stage(engine=engine, project=ProjectFactory(slug=f"bench-{suffix}"), port=port,
                          environment=EnvironmentFactory(
                              slug=f"bench-{suffix}", docker_host_url=engine.docker_host, registry=engine.registry,
                              registry_username=engine.user, registry_password=engine.password,
                              health_url=f"http://127.0.0.1:{port}/healthz"))
            for side in ("portal", "direct") if round_ % 2 == 0 else ("direct", "portal"):
                if side == "portal":
                    portal_times.append(portal(stage))
                else:
                    direct_times.append(direct(engine, client, free_port()))
            print(f"round {round_ + 1}: portal {portal_times[-1]:.2f} s, direct {direct_times[-1]:.2f} s")
    portal_median, direct_median = statistics.median(portal_times), statistics.median(direct_times)
    ratio = portal_median / direct_median
    print(f"median of {args.rounds} rounds: portal {portal_median:.2f} s, direct SDK script {direct_median:.2f} s")
    print(bench_line("deploy_overhead", ratio, TARGET, ratio <= TARGET))


if __name__ == "__main__":
    main()
