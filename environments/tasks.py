"""django-q2 entry points of the environments app: they take ids and call a service."""

from environments import deployer


def run_deployment(deployment_id: int) -> str:
    return deployer.run_deployment(deployment_id).status
