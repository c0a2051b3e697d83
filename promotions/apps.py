from django.apps import AppConfig


class PromotionsConfig(AppConfig):
    name = "promotions"
    verbose_name = "Promotions"

    def ready(self):
        from django.db.models.signals import post_save

        from deliveries.models import Project
        from promotions.signals import give_new_project_the_default_gate

        post_save.connect(give_new_project_the_default_gate, sender=Project,
                          dispatch_uid="promotions.default_gate")
