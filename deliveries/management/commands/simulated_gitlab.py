"""Serve the simulated GitLab (simulators/gitlab.py) for the local demo.

Each project with a `gitlab_project_path` becomes a GitLab project whose dev and release branches start at the
commits of the portal's latest runs on them; its dev branch then follows the commit of the portal's latest dev run
(the one the simulated Jenkins built last), so promoting the latest green dev run merges the tested sha, and one
that a newer run has passed is refused as "dev has moved", as GitLab would.
The portal's GITLAB_TOKEN is the token of the simulated user `portal-bot`, who may approve the merge requests
it opens (on a real GitLab, allow that on the project or give the portal an approver's token). Webhooks go to
the portal with each project's webhook secret, kept in var/simulated_gitlab_secrets.json (0600) and reused
while they still match, so restarting the demo does not change them.
"""

from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from deliveries import gitlab_hooks
from deliveries.models import PipelineRun, Project, Promotion
from promotions.services import mr_title
from simulators import kept_secrets, serve_until_stopped
from simulators.gitlab import SimulatedGitLab

PORTAL_USER = "portal-bot"
DEMO_USERS = ["dana.dev", "tom.lead", "olga.ops"]  # seed_demo's users, who act in GitLab's web UI too
HOOK_PATH = "/api/v1/hooks/gitlab/"


class Command(BaseCommand):
    help = "Serve a simulated GitLab with the portal's projects (demo only, never production)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8082)
        parser.add_argument("--portal-url", default="http://127.0.0.1:8000", help="Where webhooks are delivered")

    def handle(self, *args, host, port, portal_url, **options):
        if not settings.GITLAB_TOKEN:
            raise CommandError("Set GITLAB_TOKEN: the simulated GitLab asks for it as a real one does.")
        projects = [p for p in Project.objects.order_by("slug") if p.gitlab_project_path]
        if not projects:
            raise CommandError("No project has a GitLab project path: run `manage.py seed_demo` first.")
        secrets = webhook_secrets(projects, Path(settings.VAR_DIR) / "simulated_gitlab_secrets.json")
        try:
            simulated = simulated_gitlab(projects, token=settings.GITLAB_TOKEN, portal_url=portal_url,
                                         secrets=secrets, host=host, port=port)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        paths = ", ".join(p.gitlab_project_path for p in projects)
        serve_until_stopped(simulated, stdout=self.stdout, message=(
            f"Simulated GitLab (not a real one) at {simulated.url}, webhooks to "
            f"{portal_url.rstrip('/')}{HOOK_PATH}; projects: {paths}"))


def simulated_gitlab(projects, *, token: str, portal_url: str, secrets: dict[str, str], host: str = "127.0.0.1",
                     port: int = 0) -> SimulatedGitLab:
    """The imitation, not yet serving: the projects, their branch heads from the portal's runs, their hooks."""
    simulated = SimulatedGitLab(tokens={token: PORTAL_USER}, host=host, port=port)
    for username in DEMO_USERS:
        simulated.add_user(username)
    for project in projects:
        branches = {branch: latest_commit(project, branch) for branch in (project.dev_branch, project.release_branch)}
        simulated.add_project(project.gitlab_project_path, branches=branches, default_branch=project.release_branch,
                              author_can_approve=True)
        simulated.add_hook(project.gitlab_project_path, url=f"{portal_url.rstrip('/')}{HOOK_PATH}",
                           token=secrets[project.slug])
        simulated.follow(project.gitlab_project_path, project.dev_branch,
                         partial(built_last, project, project.dev_branch))
        restore_merge_requests(simulated, project)
    return simulated


def restore_merge_requests(simulated: SimulatedGitLab, project: Project) -> None:
    """The merge requests the portal's promotions link to (the demo history's): kept, so that the API knows them by
    their numbers and new ones are numbered after them. One MR serves every promotion that reused it; it is merged
    if one of them merged it."""
    merge_requests: dict[int, dict] = {}
    promotions = (Promotion.objects.filter(project=project, mr_iid__isnull=False)
                  .select_related("source_run__project").order_by("created_at", "pk"))
    for promotion in promotions:
        kept = merge_requests.setdefault(promotion.mr_iid, {
            "title": mr_title(promotion),
            "created_at": promotion.created_at, "merge_commit_sha": "", "merged_at": None})
        kept["sha"] = promotion.source_run.commit_sha
        if promotion.merge_commit_sha:
            kept.update(merge_commit_sha=promotion.merge_commit_sha, merged_at=promotion.merged_at)
    for iid, kept in merge_requests.items():
        simulated.restore_merge_request(project.gitlab_project_path, iid=iid, source_branch=project.dev_branch,
                                        target_branch=project.release_branch, author=PORTAL_USER, **kept)


def latest_commit(project: Project, branch: str) -> str | None:
    """The commit of the portal's latest run on the branch (None: the imitation makes one up)."""
    return (PipelineRun.objects.filter(project=project, branch=branch).exclude(commit_sha="")
            .order_by("-created_at", "-id").values_list("commit_sha", flat=True).first())


def built_last(project: Project, branch: str) -> str | None:
    """latest_commit, asked from one of the imitation's request threads: its connection goes with the request."""
    try:
        return latest_commit(project, branch)
    finally:
        connections.close_all()


def webhook_secrets(projects, path: Path) -> dict[str, str]:
    """A webhook secret per project slug: the one kept in `path` if it still matches, else a new one."""
    kept = kept_secrets.read(path)
    secrets = {}
    for project in projects:
        secret = kept.get(project.slug, "")
        if not project.gitlab_webhook_secret_matches(secret):
            secret = gitlab_hooks.issue_webhook_secret(project=project, actor_label="simulated GitLab")
        secrets[project.slug] = secret
    kept_secrets.write(path, secrets)
    return secrets
