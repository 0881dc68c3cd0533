from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway.admission.exporter import QueueCollector
        from gateway.usage.exporter import GatewayCollector
        from sparkportal import exporter

        exporter.register(GatewayCollector())
        exporter.register(QueueCollector())
        _weights_invalidate_principals()


def _weights_invalidate_principals() -> None:
    """A user's queue weight is cached with their principal: a change must reach every gateway process."""
    from django.db.models.signals import post_delete, post_save

    from accounts.revocation import generation_bump_on_commit
    from gateway.models import QueueWeight

    def changed(**kwargs) -> None:
        generation_bump_on_commit()

    post_save.connect(changed, sender=QueueWeight, weak=False, dispatch_uid="gateway-queue-weight-save")
    post_delete.connect(changed, sender=QueueWeight, weak=False, dispatch_uid="gateway-queue-weight-delete")
