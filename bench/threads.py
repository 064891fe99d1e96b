"""Whether selections scale with threads in one process (``python -m bench threads``).

The service runs its selections on a pool of compute threads in one process. This measures,
side by side in one process, how many selections per second 1 and 2 threads complete on the
same pool, in rounds that alternate between the two: real MiniLM tweet vectors tiled to
100,000 (as ``bench speed``'s tweets), labelled (the joint kernel, as the service's labelled
pools), with a faiss IVF prefilter (as the service gives a pool above 50,000), compare
baselines on (the API's default), k = 8. A ratio near 1 says two selections do not run in
parallel (the GIL, or the index's lock around each search, held for most of a selection): more
throughput then needs more processes, not more threads. The quick mode
(a small pool, a few selections) runs in the test suite.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.environment import save_result
from bench.speed import kind_data
from selector import Pool, select
from selector.prefilter import PoolIndex, PrefilterConfig

THREAD_COUNTS = (1, 2)
LABELS = ("negative", "neutral", "positive")


def selections_per_second(
    pool: Pool, queries: np.ndarray, threads: int, per_thread: int, k: int
) -> float:
    """Selections per second of ``threads`` threads each selecting ``per_thread`` times
    (queries in turn), from the first start to the last finish."""
    barrier = threading.Barrier(threads + 1)

    def work(offset: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            select(pool, queries[(offset + i) % len(queries)], k, compare_baselines=True)

    workers = [threading.Thread(target=work, args=(t * per_thread,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * per_thread / (time.perf_counter() - started)


def run(quick: bool = False, k: int = 8) -> dict[str, Any]:
    size, rounds, per_thread = (4_000, 2, 10) if quick else (100_000, 5, 150)
    vectors, queries, real = kind_data("tweets", size, 384, 300 if quick else None, 256)
    labels = np.array([LABELS[i % len(LABELS)] for i in range(size)])
    config = PrefilterConfig(kind="ivf", approximate_above=1_000 if quick else 50_000)
    pool = Pool.from_arrays(
        vectors, index=PoolIndex.build(vectors, config), normalized=True, labels=labels
    )
    assert select(pool, queries[0], k).prefiltered
    selections_per_second(pool, queries, 1, max(2, per_thread // 10), k)  # warm-up
    measured: dict[int, list[float]] = {threads: [] for threads in THREAD_COUNTS}
    for _ in range(rounds):  # alternating, so a drift of the machine hits both alike
        for threads in THREAD_COUNTS:
            measured[threads].append(selections_per_second(pool, queries, threads, per_thread, k))
    median = {threads: statistics.median(values) for threads, values in measured.items()}
    return {
        "pool_size": size,
        "real_rows": real,
        "k": k,
        "rounds": rounds,
        "selections_per_thread": per_thread,
        "per_s": {str(threads): values for threads, values in measured.items()},
        "median_per_s": {str(threads): value for threads, value in median.items()},
        "two_over_one": median[2] / median[1],
    }


def write(path: Path, quick: bool = False) -> dict[str, Any]:
    """Run (a small pool when ``quick``) and write the JSON result to ``path``."""
    result = run(quick=quick)
    save_result(path, result)
    return result
