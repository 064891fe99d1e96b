"""Selection speed on synthetic clustered unit vectors, side by side in one run.

Compares mmdshot's exact greedy, its faiss-prefiltered greedy and batched selection with one
float32 matrix-vector product over the pool (the floor of any exact selection) and with a
naive numpy greedy that rescans the pool at every step. Reports medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from selector import Pool, PoolIndex, PrefilterConfig, select, select_batch


def clustered_unit_vectors(n: int, dimension: int, seed: int, centres_seed: int = 0) -> np.ndarray:
    """``(n, d)`` float32 unit rows drawn around 256 random centres (embedding-like); draws
    with the same ``centres_seed`` share their centres (queries look like the pool)."""
    rng = np.random.default_rng(seed)
    centres = (
        np.random.default_rng(centres_seed).standard_normal((256, dimension)).astype(np.float32)
    )
    out = np.empty((n, dimension), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = centres[rng.integers(0, 256, stop - start)]
        block += 0.8 * rng.standard_normal(block.shape, dtype=np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def naive_numpy_greedy(pool: np.ndarray, query: np.ndarray, k: int, tau: float) -> list[int]:
    """The textbook greedy: every step recomputes the objective over the whole pool."""
    affinity = np.exp((pool @ query - 1.0) / tau)
    redundancy = np.zeros(pool.shape[0], dtype=np.float32)
    chosen: list[int] = []
    sum_chosen = sum_affinity = 0.0
    for step in range(1, k + 1):
        objective = (sum_chosen + 2 * redundancy + 1) / step**2 - 2 * (
            sum_affinity + affinity
        ) / step
        objective[chosen] = np.inf
        best = int(np.argmin(objective))
        chosen.append(best)
        sum_chosen += 2 * redundancy[best] + 1
        sum_affinity += affinity[best]
        redundancy += np.exp((pool @ pool[best] - 1.0) / tau)
    return chosen


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(pool_size: int, large_pool_size: int, batch: int, repeats: int, k: int = 8) -> dict:
    dimension = 384
    vectors = clustered_unit_vectors(pool_size, dimension, 0)
    queries = clustered_unit_vectors(max(batch, repeats), dimension, 1)
    pool = Pool.from_arrays(vectors, normalized=True)
    cycle = iter(range(10**9))

    def next_query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    matvec = median_seconds(lambda: vectors @ next_query(), repeats)
    naive = median_seconds(lambda: naive_numpy_greedy(vectors, next_query(), k, 0.2), repeats)
    exact = median_seconds(lambda: select(pool, next_query(), k), repeats)
    exact_plain = median_seconds(lambda: select(pool, next_query(), k, refine=False), repeats)
    batched = median_seconds(lambda: select_batch(pool, queries[:batch], k), max(3, repeats // 5))
    reference = naive_numpy_greedy(vectors, queries[0], k, 0.2)
    agree = select(pool, queries[0], k, refine=False).indices == reference

    large = clustered_unit_vectors(large_pool_size, dimension, 2)
    started = time.perf_counter()
    index = PoolIndex.build(large, PrefilterConfig(kind="ivf", approximate_above=50_000))
    build_seconds = time.perf_counter() - started
    large_pool = Pool.from_arrays(large, index=index, normalized=True)
    prefiltered = median_seconds(lambda: select(large_pool, next_query(), k), repeats)
    large_matvec = median_seconds(lambda: large @ next_query(), max(3, repeats // 2))
    exact_large = Pool.from_arrays(large, normalized=True)
    cost = [(select(large_pool, q, k).mmd2, select(exact_large, q, k).mmd2) for q in queries[:10]]
    return {
        "pool_size": pool_size,
        "large_pool_size": large_pool_size,
        "dimension": dimension,
        "k": k,
        "batch": batch,
        "matvec_ms": matvec * 1e3,
        "naive_greedy_ms": naive * 1e3,
        "exact_ms": exact * 1e3,
        "exact_no_swap_ms": exact_plain * 1e3,
        "batch_total_ms": batched * 1e3,
        "naive_agrees_with_exact": agree,
        "large_matvec_ms": large_matvec * 1e3,
        "prefiltered_ms": prefiltered * 1e3,
        "index_build_s": build_seconds,
        "prefilter_mmd2_excess_pct": 100
        * (np.mean([a for a, _ in cost]) / np.mean([b for _, b in cost]) - 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the test suite)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/speed.json"))
    args = parser.parse_args()
    if args.quick:
        result = run(pool_size=5_000, large_pool_size=60_000, batch=16, repeats=3)
    else:
        result = run(pool_size=100_000, large_pool_size=1_000_000, batch=256, repeats=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
