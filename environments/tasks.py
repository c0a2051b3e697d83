"""django-q2 entry points of the environments app: they take ids and call a service."""

from environments import deployer, stacks


def run_deployment(deployment_id: int) -> str:
    return deployer.run_deployment(deployment_id).status


def apply_stack(environment_id: int) -> str:
    return stacks.apply_stack(environment_id).status


def refresh_stack(environment_id: int, attempt: int = 0) -> str:
    return stacks.refresh_stack(environment_id, attempt).status
