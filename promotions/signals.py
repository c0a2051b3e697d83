"""Signal receivers of the promotion flow (connected in PromotionsConfig.ready)."""

from promotions import services


def give_new_project_the_default_gate(sender, instance, created, raw=False, **kwargs):
    """However a project is made (admin, demo, a script), it starts with the default quality gate."""
    if created and not raw:
        services.ensure_default_gate(project=instance)


def release_on_production_deployment(sender, deployment, **kwargs):
    """A production deployment that succeeded, by Jenkins or by the portal's deployer, releases the promotion
    that led to it."""
    services.record_production_deployment(deployment=deployment)
