from django.apps import AppConfig


class PromotionsConfig(AppConfig):
    name = "promotions"
    verbose_name = "Promotions"

    def ready(self):
        from django.db.models.signals import post_save

        from deliveries.models import Project
        from environments.signals import deployment_succeeded
        from promotions.signals import give_new_project_the_default_gate, release_on_production_deployment

        post_save.connect(give_new_project_the_default_gate, sender=Project,
                          dispatch_uid="promotions.default_gate")
        deployment_succeeded.connect(release_on_production_deployment, dispatch_uid="promotions.release")
