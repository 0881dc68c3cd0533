"""Fixtures of the model registry tests: a fake hub on loopback and a private weights folder."""
import time

import pytest

from tests.fakes.fake_hub import FakeHub

MB = 1024 * 1024
TINY = "acme/tiny-llama"  # 3 MB of weights, answers at once
SLOW = "acme/slow-llama"  # 24 MB paced at 8 MB/s: time to cancel or kill a worker mid-file
GATED = "acme/gated-llama"
PRIVATE = "acme/private-llama"
HUGE = "acme/huge-llama"  # its listing claims 40 TB
RERANKER = "BAAI/bge-reranker-v2-m3"  # a catalog entry, generated small, for the browser
GATED_TOKEN = "hf_test_gated_0123456789"


@pytest.fixture(scope="session")
def fake_hub():
    hub = FakeHub().start()
    hub.add_model_repo(TINY, weight_bytes=3 * MB, shards=2)
    hub.add_model_repo(SLOW, weight_bytes=24 * MB, shards=1)
    hub.add_model_repo(GATED, weight_bytes=1 * MB, shards=1)
    hub.add_model_repo(PRIVATE, weight_bytes=1 * MB, shards=1)
    hub.add_model_repo(RERANKER, weight_bytes=24 * MB, shards=2)
    huge = hub.add_model_repo(HUGE, weight_bytes=1 * MB, shards=1)
    huge.files["model-00001-of-00001.safetensors"].listed_size = 40 * 10**12
    hub.defaults = {SLOW: ("ok", 8 * MB), RERANKER: ("ok", 6 * MB), GATED: ("gated", None), PRIVATE: ("private", None)}
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub, settings, tmp_path):
    """The fake hub as the portal's HF_ENDPOINT, with an empty weights folder for this test."""
    settings.PORTAL_HF_ENDPOINT = fake_hub.url
    settings.PORTAL_WEIGHTS_DIR = tmp_path / "hf"
    settings.PORTAL_MODEL_ROOTS = [tmp_path / "models"]
    (tmp_path / "models").mkdir()
    for repo_id, repo in fake_hub.repos.items():
        repo.mode, repo.rate_bps = fake_hub.defaults.get(repo_id, ("ok", None))
        repo.gated_tokens = {GATED_TOKEN}
        repo.cut_times, repo.fail_after = 1, 0
    fake_hub.release_stall.clear()
    with fake_hub.lock:
        fake_hub.requests.clear()
    yield fake_hub
    fake_hub.release_stall.set()


@pytest.fixture
def node(db):
    from django.conf import settings as dj

    from nodes.models import Node

    node, _ = Node.objects.get_or_create(name=dj.NODE_NAME, defaults={"queue": f"node.{dj.NODE_NAME}"})
    return node


def wait_for(predicate, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def finished(download_id):
    from models_registry.models import Download

    d = Download.objects.get(pk=download_id)
    return d if d.status in ("done", "failed", "cancelled") else None
