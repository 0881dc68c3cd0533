"""Model registry tasks. Each takes ids, runs one service, and is routed to the node whose host it touches."""
from sparkportal.celery import app


@app.task(ignore_result=True, acks_late=False)
def download_run_task(download_id: int) -> None:
    """Runs on the node's queue; claims its row, so a duplicate delivery does nothing."""
    from models_registry.services import downloads

    downloads.download_run(download_id=download_id)


@app.task(ignore_result=True, time_limit=600)
def weights_scan_task(node_id: int) -> None:
    """Runs on the node's queue: only that host can see its own cache. Safe to run twice."""
    from models_registry.services import weights

    weights.weights_scan_run(node_id=node_id)


@app.task(ignore_result=True, time_limit=600)
def weights_delete_task(deletion_id: int) -> None:
    """Runs on the node's queue; claims its row (queued -> running), so a duplicate delivery does nothing."""
    from models_registry.services import weights

    weights.weights_deletion_run(deletion_id=deletion_id)


@app.task(ignore_result=True, time_limit=300)
def repo_lookup_task(snapshot_id: int) -> None:
    """Runs on the node's queue whose token and network the look-up uses; claims its row."""
    from models_registry.services import lookups

    lookups.repo_lookup_run(snapshot_id=snapshot_id)
