"""Deploys a deployment's images to its environment's Docker host through the docker SDK.

The steps, each logged on the Deployment as it happens:
  0. recover: make the host match the database (reconcile below): this is what repairs a worker killed mid-way;
  1. pull every image by digest, with the environment's registry credentials;
  2. start a trial container per image, labelled with project, environment, deployment, run and digest; the image
     that exposes a port publishes it on a free host port;
  3. probe the trial over HTTP (the path of the environment's health URL) until it answers, within a deadline;
  4. switch: stop the serving containers, start new ones from the same images on the service port, probe again;
  5. record the success, then remove the previous containers and the trials.
If any step fails, reconcile() removes the new containers and starts the previous ones again (the automatic
rollback), and the deployment is recorded rolled back with the reason.

Why the switch stops and starts: a published port belongs to one container and is fixed when the container is
created, so the new version cannot take over the service port while the old one holds it. A proxy in front would
switch without a gap, but it is one more moving part on every host; here the gap is one container start (under a
second), and the trial has proved the image healthy before the old version stops. The price is that a worker killed
inside that gap leaves nothing serving until the next attempt recovers the host (the task is handed out again).

Health is decided by probing over HTTP, never by the engine's HEALTHCHECK status (podman leaves it "starting").
The environment's health URL gives the host, the service port and the path. One service per environment, unless
the health URL names {project}: then each project has its own (e.g. its own port or host name behind a proxy).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import docker
import requests
from docker.errors import DockerException
from docker.models.containers import Container

from environments import deployments as records
from environments.models import Deployment, DeploymentStatus, Environment
from environments.services import previous_success

PROBE_DEADLINE = 60.0  # seconds for a new container to answer its health path
PROBE_INTERVAL = 0.2
STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL when a container stops
ENGINE_TIMEOUT = 120  # seconds for one call to the engine (a pull of a large image is one call)
# Docker Engine 20.10+ and podman 4 speak it. Fixed, because asking the engine ("auto") costs a /version call that
# podman answers in seconds.
ENGINE_API_VERSION = "1.41"

PROJECT, ENVIRONMENT, DEPLOYMENT = "portal.project", "portal.environment", "portal.deployment"
RUN, DIGEST, ROLE = "portal.run", "portal.digest", "portal.role"
TRIAL, SERVICE = "trial", "service"


class DeployFailed(Exception):
    """A step failed; the message is the reason recorded on the deployment."""


# What a step may raise. Anything else is a bug: it propagates, and the next attempt recovers the host.
FAILURES = (DeployFailed, DockerException, requests.RequestException)


@dataclass(frozen=True)
class Image:
    reference: str  # repository@digest
    digest: str
    id: str
    port: str | None  # the TCP port it serves on, e.g. "8080/tcp"; None for all but the serving image


def run_deployment(deployment_id: int, *, client: docker.DockerClient | None = None,
                   probe_deadline: float = PROBE_DEADLINE) -> Deployment:
    """Run a pending deployment (the django-q2 task's body). A finished one is left as it is: a task handed out
    twice deploys once."""
    deployment, interrupted = records.claim(deployment_id)
    if deployment is None:
        return Deployment.objects.get(pk=deployment_id)
    Deployer(deployment, client=client, probe_deadline=probe_deadline).run(interrupted=interrupted)
    return deployment


def engine_for(environment: Environment) -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=environment.docker_host_url, timeout=ENGINE_TIMEOUT,
                                     version=ENGINE_API_VERSION)
        client.ping()
        return client
    except (DockerException, requests.RequestException) as error:
        raise DeployFailed(f"the Docker host {environment.docker_host_url} cannot be reached: {error}") from error


class Deployer:
    def __init__(self, deployment: Deployment, *, client: docker.DockerClient | None = None,
                 probe_deadline: float = PROBE_DEADLINE):
        self.deployment = deployment
        self.environment = deployment.environment
        self.project = deployment.project
        self.client = client
        self.probe_deadline = probe_deadline
        parts = urlsplit(self.environment.health_url_for(self.project))
        self.health_url, self.service_port = parts, parts.port or (443 if parts.scheme == "https" else 80)

    def log(self, message: str) -> None:
        records.log_step(self.deployment, message)

    def run(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self.log("an earlier attempt stopped mid-deployment (its worker died): recovering the host first")
        try:
            self.client = self.client or engine_for(self.environment)
            self.reconcile()
        except FAILURES as error:  # nothing has changed on the host yet
            records.give_up(self.deployment, reason=describe(error))
            return
        try:
            images = self.pull()
            trials = [self.create(image, role=TRIAL, index=index, host_port=None)
                      for index, image in enumerate(images)]
            self.start(trials)
            self.probe(trials, port=self.published_port(trials))
            previous = self.switch(images)
        except FAILURES as error:
            self.roll_back(reason=describe(error))
            return
        records.succeed(self.deployment)
        try:
            self.remove(previous + trials, why="previous and trial containers")
        except FAILURES as error:  # the new version serves; the next deployment's recovery removes what is left
            self.log(f"warning: could not remove the previous containers: {describe(error)}")

    # --- steps ------------------------------------------------------------------------------------------------

    def pull(self) -> list[Image]:
        environment = self.environment
        auth = ({"username": environment.registry_username, "password": environment.registry_password}
                if environment.registry_username else None)
        images = []
        for artifact in self.deployment.artifacts.order_by("pk"):
            repository = artifact.repository
            if environment.registry and "/" in repository and not is_registry_host(repository.split("/", 1)[0]):
                repository = f"{environment.registry}/{repository}"
            reference = f"{repository}@{artifact.digest}"
            self.log(f"pull {reference}")
            for event in self.client.api.pull(repository, tag=artifact.digest, auth_config=auth, stream=True,
                                              decode=True):
                if event.get("error"):
                    raise DeployFailed(f"pulling {reference} failed: {event['error']}")
            image = self.client.images.get(reference)
            ports = [port for port in (image.attrs.get("Config") or {}).get("ExposedPorts") or {}
                     if port.endswith("/tcp")]
            images.append(Image(reference=reference, digest=artifact.digest, id=image.id,
                                port=sorted(ports)[0] if ports else None))
        serving = [image for image in images if image.port]
        if not serving:
            raise DeployFailed("no image exposes a TCP port: nothing would serve the health URL")
        # The first image that exposes a port serves; the others (workers) publish nothing.
        return [image if image is serving[0] else replace(image, port=None) for image in images]

    def create(self, image: Image, *, role: str, index: int, host_port: int | None) -> Container:
        """A container of this deployment, not started. Only the first image that exposes a port publishes it."""
        name = f"{self.project.slug}-{self.environment.slug}-{self.deployment.pk}-{role}-{index}"
        labels = {PROJECT: self.project.slug, ENVIRONMENT: self.environment.slug, DEPLOYMENT: str(self.deployment.pk),
                  RUN: str(self.deployment.source_run.build_number if self.deployment.source_run else ""),
                  DIGEST: image.digest, ROLE: role}
        return self.client.containers.create(
            image.id, name=name, labels=labels, detach=True,
            ports={image.port: host_port} if image.port else {},
            restart_policy={"Name": "unless-stopped"} if role == SERVICE else None,
        )

    def start(self, containers: list[Container]) -> None:
        for container in containers:
            self.log(f"start {container.name}")
            container.start()

    def published_port(self, containers: list[Container]) -> int:
        for container in containers:
            container.reload()
            for bindings in (container.ports or {}).values():
                if bindings:
                    return int(bindings[0]["HostPort"])
        raise DeployFailed("the engine published no port for the trial container")

    def probe(self, containers: list[Container], *, port: int) -> None:
        """Until the health path answers below 400 within the deadline; fails at once when a container exits."""
        netloc = f"{self.health_url.hostname}:{port}"
        url = urlunsplit(self.health_url._replace(netloc=netloc))
        self.log(f"probe {url}")
        deadline = time.monotonic() + self.probe_deadline
        last = "no answer"
        while True:
            for container in containers:
                container.reload()
                if container.status not in ("created", "running"):
                    state = container.attrs.get("State") or {}
                    output = container.logs(tail=5).decode(errors="replace").strip()
                    raise DeployFailed(f"container {container.name} stopped ({container.status}, exit code "
                                       f"{state.get('ExitCode')}) before it was healthy"
                                       + (f"; its last output: {output}" if output else ""))
            try:
                answer = requests.get(url, timeout=2, allow_redirects=False)
                if answer.status_code < 400:
                    self.log(f"healthy: {url} answered HTTP {answer.status_code}")
                    return
                last = f"HTTP {answer.status_code}"
            except requests.RequestException as error:
                last = type(error).__name__
            if time.monotonic() >= deadline:
                raise DeployFailed(f"{url} was not healthy within {self.probe_deadline:g} s (last answer: {last})")
            time.sleep(PROBE_INTERVAL)

    def switch(self, images: list[Image]) -> list[Container]:
        """Stop the serving containers, start this deployment's on the service port and probe them. Returns the
        previous containers (stopped, removed once the success is recorded)."""
        previous = [c for c in self.containers() if c.labels.get(ROLE) == SERVICE
                    and c.labels.get(DEPLOYMENT) != str(self.deployment.pk)]
        created = [self.create(image, role=SERVICE, index=index, host_port=self.service_port if image.port else None)
                   for index, image in enumerate(images)]
        self.log(f"switch: stop {names(previous) or 'nothing'}, start {names(created)} on port {self.service_port}")
        for container in previous:
            container.stop(timeout=STOP_TIMEOUT)
        self.start(created)
        self.probe(created, port=self.service_port)
        return previous

    def roll_back(self, *, reason: str) -> None:
        self.log(f"failed: {reason}; rolling back")
        try:
            restored = self.reconcile()
        except FAILURES as error:
            records.give_up(self.deployment, reason=f"{reason}; the rollback failed too: {describe(error)}")
            return
        if restored is None:
            records.give_up(self.deployment, reason=f"{reason}; no earlier version of the portal's ran here")
            return
        try:  # on the port it was published on, which is the service port unless the health URL changed since
            serving = self.containers(deployment=restored)
            self.probe(serving, port=self.published_port(serving))
        except FAILURES as error:
            self.log(f"warning: deployment #{restored.pk} restarted but does not answer yet: {describe(error)}")
        records.roll_back_automatically(self.deployment, reason=reason, restored=restored)

    # --- the host's state -------------------------------------------------------------------------------------

    def containers(self, deployment: Deployment | None = None) -> list[Container]:
        labels = [f"{PROJECT}={self.project.slug}", f"{ENVIRONMENT}={self.environment.slug}"]
        if deployment is not None:
            labels.append(f"{DEPLOYMENT}={deployment.pk}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def reconcile(self) -> Deployment | None:
        """Make the host match the database: the service containers of the newest successful deployment of the
        current images run, and nothing else of this project and environment exists. Returns that deployment
        (None when none of it is on the host).

        The labels make this possible after any crash: trials and the containers of deployments that did not
        succeed are removed; the previous version, stopped by a switch that did not finish, starts again; a
        version that started but was never recorded successful is removed. So never two versions, nor none."""
        current = previous_success(project=self.project, environment=self.environment)
        containers = self.containers()
        generations: dict[int, list[Container]] = defaultdict(list)
        for container in containers:
            if container.labels.get(ROLE) == SERVICE and container.labels.get(DEPLOYMENT, "").isdigit():
                generations[int(container.labels[DEPLOYMENT])].append(container)
        keep = None
        if current is not None and generations:
            succeeded = Deployment.objects.filter(pk__in=generations, status=DeploymentStatus.SUCCESS)
            for pk in sorted(succeeded.values_list("pk", flat=True), reverse=True):
                if {c.labels.get(DIGEST) for c in generations[pk]} == set(current.image_digests):
                    keep = pk
                    break
        stale = [c for c in containers if c not in generations.get(keep, [])]
        self.remove(stale, why="containers the database does not know as serving")
        for container in generations.get(keep, []):
            if container.status != "running":
                self.log(f"recover: start {container.name} again")
                container.start()
        if keep is None:
            if current is not None:
                self.log(f"recover: no container of deployment #{current.pk} found on the host")
            return None
        self.log(f"recover: deployment #{keep}'s containers serve ({names(generations[keep])})")
        return Deployment.objects.get(pk=keep)

    def remove(self, containers: list[Container], *, why: str) -> None:
        if not containers:
            return
        self.log(f"remove {why}: {names(containers)}")
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


def is_registry_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


def names(containers: list[Container]) -> str:
    return ", ".join(container.name for container in containers)


def describe(error: Exception) -> str:
    if isinstance(error, DeployFailed):
        return str(error)
    if isinstance(error, docker.errors.APIError):
        return f"the engine refused: {error.explanation or error}"
    if isinstance(error, (DockerException, requests.RequestException)):
        return f"talking to the Docker host failed ({type(error).__name__}): {error}"
    return f"{type(error).__name__}: {error}"
