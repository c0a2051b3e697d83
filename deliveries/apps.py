from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self):
        from deliveries.models import ProjectToken
        from deliveries.services import forget_verified_tokens

        # A token edited (revoked_at set in the admin) or deleted stops being accepted from the cache at once.
        post_save.connect(forget_verified_tokens, sender=ProjectToken, dispatch_uid="forget_tokens_on_save")
        post_delete.connect(forget_verified_tokens, sender=ProjectToken, dispatch_uid="forget_tokens_on_delete")
