from celery import shared_task


@shared_task(ignore_result=True, time_limit=120)
def servers_unload_idle_task() -> None:
    """Stops servers marked "unload when idle" (beat, every minute; safe to run twice)."""
    from gateway import services

    services.servers_unload_idle()
