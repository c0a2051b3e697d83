"""django-q2 entry points of the environments app: they take ids and call a service."""

from django_q.tasks import async_task

from environments import availability, deployer, stacks
from environments.models import Deployment, DeploymentStatus, Environment


def run_deployment(deployment_id: int) -> str:
    deployment = deployer.run_deployment(deployment_id)
    if deployment.status in (DeploymentStatus.SUCCESS, DeploymentStatus.ROLLED_BACK):
        # what serves now is checked at once, not at the schedule's next pass
        async_task("environments.tasks.check_after_deployment", deployment.pk,
                   task_name=f"check after deployment {deployment.pk}")
    return deployment.status


def check_after_deployment(deployment_id: int) -> int:
    deployment = Deployment.objects.select_related("environment", "project").get(pk=deployment_id)
    return len(availability.check_after_deployment(deployment))


def check_environment(environment_id: int) -> int:
    return len(availability.check_environment(environment=Environment.objects.get(pk=environment_id)))


def check_availability_due() -> int:
    return len(availability.check_due())




def apply_stack(environment_id: int) -> str:
    return stacks.apply_stack(environment_id).status


def refresh_stack(environment_id: int, attempt: int = 0) -> str:
    return stacks.refresh_stack(environment_id, attempt).status
