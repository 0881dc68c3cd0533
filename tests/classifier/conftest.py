"""Fixtures of the classifier tests: the taxonomy, an archive root with the labeled corpus, a fake LLM."""
import logging
from pathlib import Path

import pytest

from tests.classifier.corpus import write_corpus
from tests.fakes.openai_llm import FakeOpenAI

DATA = Path(__file__).parent / "data"
logging.getLogger("fontTools").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def jd_yaml() -> str:
    return (DATA / "jd.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The archive root, holding the labeled documents under docs/ (written once per run)."""
    root = tmp_path_factory.mktemp("archive")
    labels = write_corpus(root / "docs")
    return root, labels


@pytest.fixture
def archive(settings, corpus_dir):
    root, labels = corpus_dir
    settings.PORTAL_CLASSIFIER_ROOTS = [str(root)]
    return root, labels


@pytest.fixture(scope="session")
def fake_llm_server():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def fake_llm(settings, fake_llm_server):
    fake_llm_server.script.clear()
    fake_llm_server.requests.clear()
    fake_llm_server.embed_fail_from, fake_llm_server.embed_count = None, 0
    fake_llm_server.release()
    settings.PORTAL_CLASSIFIER_LLM_URL = fake_llm_server.url + "/v1"
    settings.PORTAL_CLASSIFIER_LLM_MODEL = fake_llm_server.model
    yield fake_llm_server
    fake_llm_server.release()  # a test that failed while holding answers must not stall the next one


@pytest.fixture
def jd_version(db, member_user, jd_yaml):
    from classifier import services

    return services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
