"""The next batch prepared while this one is worked on: a job's files are read and embedded one batch ahead
(a GPU or the CPU's inference threads) while the current batch is scored, reranked by the LLM and saved, so a
job takes about the longer of the two stages per batch, not their sum."""
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")


def ahead(items: Sequence[Item], prepare: Callable[[Item], Prepared]) -> Iterator[tuple[Item, Prepared]]:
    """Yield (item, prepare(item)) in order, with prepare(next item) running in one background thread meanwhile.

    `prepare` must not touch the database (a thread of its own has a connection of its own). Its exception is
    raised here, at the item it failed on. A caller that stops early (a cancelled job) waits at most for the one
    batch being prepared, which is then dropped: nothing runs on after the job."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier-ahead") as pool:
        future = pool.submit(prepare, items[0])
        for index, item in enumerate(items):
            prepared = future.result()
            if index + 1 < len(items):
                future = pool.submit(prepare, items[index + 1])
            yield item, prepared
