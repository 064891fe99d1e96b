"""Selection quality on real tweets: mean MMD^2 to the target for each method.

Pool and held-out queries are disjoint slices of the MiniLM-embedded tweet corpus. Three
settings: one query per selection, a shared target set (the batch of held-out queries as one
weighted target), and greedy against the exhaustive optimum on small sub-problems.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from bench.embeddings import tweet_embeddings
from bench.environment import save_result
from selector import Kernel, Pool, mmd2, select, select_batch

METHODS = ("random", "knn", "mmr", "mmd")


def _mean_ci(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    return float(array.mean()), float(1.96 * array.std(ddof=1) / np.sqrt(len(array)))


def single_query(
    pool: Pool, queries: np.ndarray, k: int, tau: float
) -> dict[str, tuple[float, float]]:
    out = {}
    for method in METHODS:
        results = select_batch(pool, queries, k, tau=tau, method=method, joint=False)
        out[method] = _mean_ci([r.mmd2 for r in results])
    return out


def shared_target(pool: Pool, targets: list[np.ndarray], k: int, tau: float) -> dict:
    out = {}
    for method in METHODS:
        values = [select(pool, t, k, tau=tau, method=method).mmd2 for t in targets]
        out[method] = _mean_ci(values)
    return out


def against_exhaustive(vectors: np.ndarray, problems: int, n: int, k: int, tau: float) -> dict:
    rng = np.random.default_rng(0)
    kernel = Kernel("softmax", tau)
    excess = []
    for _ in range(problems):
        rows = rng.choice(len(vectors), n + 1, replace=False)
        pool, query = vectors[rows[:n]], vectors[rows[n:]]
        greedy = select(pool, query, k, tau=tau, refine=False).mmd2
        refined = select(pool, query, k, tau=tau).mmd2
        target = torch.from_numpy(query).double()
        candidates = torch.from_numpy(pool).double()
        best = min(
            mmd2(candidates[list(subset)], target, kernel)
            for subset in itertools.combinations(range(n), k)
        )
        excess.append((100 * (greedy / best - 1), 100 * (refined / best - 1)))
    array = np.asarray(excess)
    return {
        "problems": problems,
        "n": n,
        "k": k,
        "greedy_mean_excess_pct": float(array[:, 0].mean()),
        "greedy_max_excess_pct": float(array[:, 0].max()),
        "swap_mean_excess_pct": float(array[:, 1].mean()),
        "swap_max_excess_pct": float(array[:, 1].max()),
    }


def run(
    pool_size: int, queries: int, batches: int, exhaustive: int, k: int, tau: float, quick: bool
) -> dict:
    # The quick mode embeds only the tweets it uses; the full run embeds (and caches) them all.
    tweets, vectors = tweet_embeddings(limit=pool_size + queries if quick else None)
    order = np.random.default_rng(0).permutation(len(tweets))
    pool_vectors = vectors[order[:pool_size]]
    held_out = vectors[order[pool_size : pool_size + queries]]
    pool = Pool.from_arrays(pool_vectors, normalized=True)
    size = max(2, queries // batches)
    targets = [held_out[i : i + size] for i in range(0, size * batches, size)]
    return {
        "pool_size": pool_size,
        "queries": queries,
        "k": k,
        "tau": tau,
        "single_query": single_query(pool, held_out, k, tau),
        "shared_target": {"targets": len(targets), "points": size}
        | shared_target(pool, targets, k, tau),
        "exhaustive": against_exhaustive(pool_vectors, exhaustive, 20 if quick else 30, 4, tau),
    }


def write(path: Path, quick: bool = False) -> dict:
    """Run (tiny sizes when ``quick``) and write the JSON result to ``path``."""
    if quick:
        result = run(pool_size=300, queries=10, batches=2, exhaustive=1, k=4, tau=0.2, quick=True)
    else:
        result = run(30_000, queries=500, batches=20, exhaustive=30, k=8, tau=0.2, quick=False)
    save_result(path, result)
    return result
