"""Downloads through a real Celery worker and the real huggingface_hub against the fake hub."""
import hashlib
import time

from models_registry import services
from models_registry.models import Download
from tests.models_registry.conftest import TINY


def wait_for(predicate, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def finished(download_id):
    d = Download.objects.get(pk=download_id)
    return d if d.status in ("done", "failed", "cancelled") else None


def test_it_downloads_a_repo_into_the_cache(hub, node, operator_user, celery_worker, settings):
    download, joined = services.download_request(actor=operator_user, node=node, repo_id=TINY)
    assert not joined
    done = wait_for(lambda: finished(download.pk))
    assert done.status == "done", done.error
    assert done.bytes_done == done.bytes_total > 3_000_000
    assert done.files_done == done.files_total == 7  # original/*.pth skipped
    snapshot = settings.PORTAL_WEIGHTS_DIR / "hub" / "models--acme--tiny-llama" / "snapshots" / done.commit
    repo = hub.repos[TINY]
    for path, item in repo.files.items():
        target = snapshot / path
        if path.startswith("original/"):
            assert not target.exists()
        else:
            assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(item.data_path.read_bytes()).hexdigest()
