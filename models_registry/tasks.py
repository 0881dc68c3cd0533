from celery import shared_task


@shared_task(ignore_result=True, acks_late=False)
def download_run_task(download_id: int) -> None:
    """Runs on the node's queue; claims its row, so a duplicate delivery does nothing."""
    from models_registry.services import downloads

    downloads.download_run(download_id=download_id)
