"""Serve the simulated Jenkins (simulators/jenkins.py) for the local demo (`make run`).

Each project's `jenkins_job_path` becomes a job whose builds play the pipeline against the portal with
that project's API token. The tokens are kept in var/simulated_jenkins_tokens.json (0600) and reused while
they are valid, so restarting the demo does not pile up tokens. Basic auth is JENKINS_USER / JENKINS_TOKEN.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max

from deliveries.models import Project, ProjectToken
from environments.models import Environment
from simulators import kept_secrets, serve_until_stopped
from simulators.jenkins import PortalTarget, SimulatedJenkins

ISSUED_AS = "simulated-jenkins"  # the name of the project tokens it issues


class Command(BaseCommand):
    help = "Serve a simulated Jenkins that plays the pipeline against the portal (demo only, never production)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8081)
        parser.add_argument("--portal-url", default="http://127.0.0.1:8000", help="Where builds send callbacks")
        parser.add_argument("--speed", type=float, default=3.0, help="Seconds an average stage takes")
        parser.add_argument("--queue-seconds", type=float, default=2.0, help="Seconds a build waits in the queue")

    def handle(self, *args, host, port, portal_url, speed, queue_seconds, **options):
        if not settings.JENKINS_USER or not settings.JENKINS_TOKEN:
            raise CommandError("Set JENKINS_USER and JENKINS_TOKEN: the simulated Jenkins asks for them as real one.")
        projects = [p for p in Project.objects.order_by("slug") if p.jenkins_job_path]
        if not projects:
            raise CommandError("No project has a Jenkins job path: run `manage.py seed_demo` first.")
        tokens = project_tokens(projects, Path(settings.VAR_DIR) / "simulated_jenkins_tokens.json")
        try:
            fake = SimulatedJenkins(
                users={settings.JENKINS_USER: settings.JENKINS_TOKEN},
                host=host, port=port, speed=speed, queue_seconds=queue_seconds,
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        # Build numbers go on from the portal's history, so a new build never lands on an old run.
        last = dict(Project.objects.filter(pk__in=[p.pk for p in projects]).annotate(n=Max("runs__build_number"))
                    .values_list("pk", "n"))
        for project in projects:
            fake.add_job(
                project.jenkins_job_path,
                portal=portal_target(project, portal_url=portal_url, token=tokens[project.slug]),
                next_build_number=(last.get(project.pk) or 0) + 1,
            )
        jobs = ", ".join(p.jenkins_job_path for p in projects)
        serve_until_stopped(fake, stdout=self.stdout, message=(
            f"Simulated Jenkins (not a real one) at {fake.url}, calling back {portal_url}; jobs: {jobs}"))


def portal_target(project, *, portal_url: str, token: str) -> PortalTarget:
    """Where the project's job reports, and the health URLs its checks probe (the Jenkinsfile's STAGING_HEALTH_URL
    and PRODUCTION_HEALTH_URL): those of the portal's staging and production environments."""
    health = {environment.slug: environment.health_url_for(project)
              for environment in Environment.objects.filter(slug__in=["staging", "production"]).exclude(health_url="")}
    return PortalTarget(portal_url, project.slug, token, project.release_branch,
                        staging_health_url=health.get("staging", ""),
                        production_health_url=health.get("production", ""))


def project_tokens(projects, path: Path) -> dict[str, str]:
    """A valid API token per project slug: the one kept in `path` if it still works, else a new one."""
    kept = kept_secrets.read(path)
    tokens = {}
    for project in projects:
        token = kept.get(project.slug, "")
        row = ProjectToken.find(token) if token else None
        if row is None or row.project_id != project.pk:
            _, token = ProjectToken.issue(project=project, name=ISSUED_AS)
        tokens[project.slug] = token
    kept_secrets.write(path, tokens)
    return tokens
