"""A job reads and embeds its next batch while the current one is scored and saved (classifier.prefetch)."""
import threading

import pytest

from classifier import prefetch
from classifier.embedding import embedders


def test_the_next_item_is_prepared_in_another_thread_while_the_caller_works_on_this_one():
    second_started = threading.Event()
    threads = []

    def prepare(item: int) -> int:
        threads.append(threading.current_thread().name)
        if item == 1:
            second_started.set()
        return item * 10

    seen = []
    for item, prepared in prefetch.ahead([0, 1, 2], prepare):
        if item == 0:  # item 1 is prepared while the caller still holds item 0
            assert second_started.wait(10)
        seen.append((item, prepared))
    assert seen == [(0, 0), (1, 10), (2, 20)]
    assert all(name.startswith("classifier-ahead") for name in threads)
    assert list(prefetch.ahead([], prepare)) == []


def test_a_failure_is_raised_at_its_item_after_the_items_before_it():
    def prepare(item: int) -> int:
        if item == 2:
            raise ValueError("cannot read batch 2")
        return item

    seen = []
    with pytest.raises(ValueError, match="cannot read batch 2"):
        for item, _prepared in prefetch.ahead([0, 1, 2, 3], prepare):
            seen.append(item)
    assert seen == [0, 1]


def test_a_caller_that_stops_early_leaves_at_most_one_item_prepared_and_no_thread_running():
    prepared = []

    def prepare(item: int) -> int:
        prepared.append(item)
        return item

    before = {t.name for t in threading.enumerate()}
    for item, _ in prefetch.ahead(list(range(10)), prepare):
        if item == 3:
            break  # a cancelled job
    assert prepared == [0, 1, 2, 3, 4]
    assert {t.name for t in threading.enumerate()} - before == set()


def test_a_cpu_embedder_leaves_the_job_batch_to_the_setting_and_a_gpu_one_asks_for_whole_chunks():
    from classifier.embedding import fast

    cpu = embedders.load("multilingual-e5-small")
    assert cpu.device == "cpu" and cpu.job_batch == 0
    assert embedders.TeiEmbedder.job_batch == 0  # TEI or an OpenAI-compatible server: no such wish
    # On a GPU (not here): whole tokenization chunks, several per call, so that they overlap the GPU's work.
    assert fast.CHUNK * fast.JOB_CHUNKS >= 4 * fast.GPU_BATCH
