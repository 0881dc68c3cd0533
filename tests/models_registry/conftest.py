"""Fixtures of the model registry tests: a fake hub on loopback and a private weights folder."""
import pytest

from tests.fakes.fake_hub import FakeHub

TINY = "acme/tiny-llama"


@pytest.fixture(scope="session")
def fake_hub():
    hub = FakeHub().start()
    hub.add_model_repo(TINY, weight_bytes=3 * 1024 * 1024, shards=2)
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub, settings, tmp_path):
    """The fake hub as the portal's HF_ENDPOINT, with an empty weights folder for this test."""
    settings.PORTAL_HF_ENDPOINT = fake_hub.url
    settings.PORTAL_WEIGHTS_DIR = tmp_path / "hf"
    settings.PORTAL_MODEL_ROOTS = [tmp_path / "models"]
    (tmp_path / "models").mkdir()
    for repo in fake_hub.repos.values():
        repo.mode, repo.rate_bps, repo.gated_tokens = "ok", None, set()
    fake_hub.release_stall.clear()
    with fake_hub.lock:
        fake_hub.requests.clear()
    yield fake_hub
    fake_hub.release_stall.set()


@pytest.fixture
def node(db):
    from django.conf import settings as dj

    from servers.models import Node

    node, _ = Node.objects.get_or_create(name=dj.NODE_NAME, defaults={"queue": f"node.{dj.NODE_NAME}"})
    return node
