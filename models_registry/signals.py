"""A node's worker that (re)starts picks up the downloads its predecessor was running when it died."""
from celery.signals import worker_ready
from django.conf import settings

from sparkportal.celery import node_queue


@worker_ready.connect
def _resume_interrupted_downloads(sender=None, **kwargs) -> None:
    consumed = set(sender.app.amqp.queues.keys()) if sender is not None else set()
    if node_queue(settings.NODE_NAME) not in consumed:
        return
    from models_registry.services import downloads

    downloads.download_requeue_interrupted(node_name=settings.NODE_NAME)
