"""Factories for the portal's models: one call gives a valid object with its parents."""

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from deliveries.models import Artifact, PipelineRun, Project, RunStatus, Stage, StageStatus
from environments.models import Deployment, DeploymentStatus, Environment, Tier


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "password")

    @factory.post_generation
    def roles(user, create, extracted, **kwargs):
        user.save()
        for role in extracted or []:
            user.groups.add(Group.objects.get_or_create(name=role)[0])  # transactional tests flush the groups


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    gitlab_project_path = factory.LazyAttribute(lambda p: f"group/{p.slug}")
    jenkins_job_path = factory.LazyAttribute(lambda p: f"delivery/{p.slug}")


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PipelineRun

    project = factory.SubFactory(ProjectFactory)
    branch = "dev"
    build_number = factory.Sequence(lambda n: n + 1)
    commit_sha = factory.LazyAttribute(lambda r: hashlib.sha1(f"{r.build_number}".encode()).hexdigest())
    commit_title = "Change something"
    commit_author = "Dana Developer"
    status = RunStatus.SUCCESS
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyAttribute(lambda r: r.started_at + timezone.timedelta(minutes=12))


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    run = factory.SubFactory(RunFactory)
    name = factory.Sequence(lambda n: f"Stage {n}")
    order = factory.Sequence(lambda n: n)
    status = StageStatus.SUCCESS


class ArtifactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Artifact

    run = factory.SubFactory(RunFactory)
    repository = "registry.example.com/group/app"
    tag = factory.LazyAttribute(lambda a: a.run.commit_sha[:8])
    digest = factory.Sequence(lambda n: "sha256:" + hashlib.sha256(str(n).encode()).hexdigest())


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ["slug"]

    name = factory.LazyAttribute(lambda e: e.slug)
    slug = "staging"
    tier = Tier.STAGING
    order = 2


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    source_run = factory.SubFactory(RunFactory)
    project = factory.LazyAttribute(lambda d: d.source_run.project)
    environment = factory.SubFactory(EnvironmentFactory)
    status = DeploymentStatus.SUCCESS
    deployed_by_label = "jenkins"
    finished_at = factory.LazyFunction(timezone.now)


def issue_project_token(project=None, name: str = "jenkins"):
    """A project (made if not given) and a fresh API token for it: (project, token row, clear token)."""
    from deliveries.models import ProjectToken

    project = project or ProjectFactory()
    row, token = ProjectToken.issue(project=project, name=name)
    return project, row, token
