"""Selection speed on synthetic clustered unit vectors, side by side in one run.

Compares mmdshot's exact greedy, its faiss-prefiltered greedy and batched selection with one
float32 matrix-vector product over the pool (the floor of any exact selection), with a
naive numpy greedy that rescans the pool at every step and with the peers of bench/peers.py
(LangChain's selectors, OpenICL's TopkRetriever). Reports medians and ratios.

``device="cuda"`` runs mmdshot's pool on the GPU against the same product on the GPU (the
peers, the naive greedy and the CPU-side prefilter stay out of that run: they have no GPU
path; the naive greedy still checks the GPU's subset once per pool).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.embeddings import tweet_embeddings
from bench.environment import package_versions, save_result
from selector import Pool, PoolIndex, PrefilterConfig, select, select_batch
from selector.device import resolve_device

if TYPE_CHECKING:
    from langchain_core.example_selectors import BaseExampleSelector


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


def isotropic_unit_vectors(n: int, dimension: int, seed: int) -> np.ndarray:
    """``(n, d)`` float32 unit rows uniform on the sphere (no structure at all)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dimension), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(n, start + 100_000) - start, dimension), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def near_duplicate_unit_vectors(
    n: int, dimension: int, seed: int, copies: int = 2_000, centres_seed: int = 0
) -> np.ndarray:
    """``(n, d)`` float32 unit rows in tight clusters of about ``copies`` near-copies each
    (cosine about 0.999 to their centre): a region of the top holds one cluster only, the
    hard case for the certificate. Draws with the same ``centres_seed`` share the centres."""
    rng = np.random.default_rng(seed)
    clusters = max(n // copies, 8)
    centres = isotropic_unit_vectors(clusters, dimension, 10_000 + centres_seed)
    out = np.empty((n, dimension), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = centres[rng.integers(0, clusters, stop - start)]
        block += 0.05 / np.sqrt(dimension) * rng.standard_normal(block.shape, dtype=np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def tweet_unit_vectors(n: int, seed: int, limit: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(pool (n, 384), queries (64, 384), real)``: real MiniLM tweet embeddings (the first
    ``limit`` unique tweets, all 37k if None), 64 held out as queries; a pool larger than the
    corpus is the corpus tiled, each copy after the first moved by small noise (cosine about
    0.999) and renormalised; ``real`` says how many rows are real tweets."""
    _, vectors = tweet_embeddings(limit)
    queries, corpus = vectors[:64], vectors[64:]
    real = min(n, len(corpus))
    pool = np.empty((n, corpus.shape[1]), dtype=np.float32)
    pool[:real] = corpus[:real]
    rng = np.random.default_rng(seed)
    for start in range(real, n, len(corpus)):
        block = corpus[: min(n, start + len(corpus)) - start].copy()
        block += (
            0.05 / np.sqrt(corpus.shape[1]) * rng.standard_normal(block.shape, dtype=np.float32)
        )
        pool[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return pool, np.ascontiguousarray(queries), real


KINDS = ("isotropic", "clustered", "near-duplicates", "tweets")


def kind_data(
    kind: str, n: int, dimension: int, tweets: int | None, queries: int = 64
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(pool, queries drawn like the pool, real rows)`` of one data kind: ``queries`` of
    them (the tweets hold out 64, tiled to that many)."""
    if kind == "tweets":
        pool, held_out, real = tweet_unit_vectors(n, 0, tweets)
        return pool, np.ascontiguousarray(np.resize(held_out, (queries, pool.shape[1]))), real
    if kind == "isotropic":
        return (
            isotropic_unit_vectors(n, dimension, 0),
            isotropic_unit_vectors(queries, dimension, 1),
            n,
        )
    if kind == "clustered":
        return (
            clustered_unit_vectors(n, dimension, 0),
            clustered_unit_vectors(queries, dimension, 1),
            n,
        )
    pool = near_duplicate_unit_vectors(n, dimension, 0)
    return pool, near_duplicate_unit_vectors(queries, dimension, 1, copies=max(n // 64, 1)), n


def measure_kinds(
    sizes: Sequence[int],
    k: int,
    repeats: int,
    tweets: int | None,
    batch: int = 256,
    kinds: Sequence[str] = KINDS,
) -> dict[str, dict[str, dict[str, float | int | bool]]]:
    """Every data kind at every pool size, side by side in this process (:func:`measure_kind`)."""
    return {
        kind: {
            str(size): measure_kind(
                *kind_data(kind, size, 384, tweets, max(64, batch)), k, repeats, batch
            )
            for size in sizes
        }
        for kind in kinds
    }


def measure_kind(
    vectors: np.ndarray, queries: np.ndarray, real: int, k: int, repeats: int, batch: int = 256
) -> dict[str, float | int | bool]:
    """Median ms of one float32 matrix-vector product over the pool ``vectors``, of mmdshot's
    exact selection (``greedy``: ``refine=False``, the naive greedy's subset, like for like;
    and the default, greedy + swap refinement) and of the naive numpy greedy, their ratios,
    whether the subsets agree, the median number of candidates the search held, and the
    median seconds of one batch of ``batch`` queries (``select_batch``, refined as the
    default)."""
    pool = Pool.from_arrays(vectors, normalized=True, device="cpu")
    cycle = iter(range(10**9))

    def query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    few = max(3, repeats // 5)
    row: dict[str, float | int | bool] = {
        "real_rows": real,
        "matvec_ms": 1e3 * median_seconds(lambda: vectors @ query(), repeats),
        "exact_no_swap_ms": 1e3
        * median_seconds(lambda: select(pool, query(), k, refine=False), repeats),
        "exact_ms": 1e3 * median_seconds(lambda: select(pool, query(), k), repeats),
        "naive_greedy_ms": 1e3
        * median_seconds(lambda: naive_numpy_greedy(vectors, query(), k, 0.2), few),
    }
    row["ratio_to_scan"] = row["exact_ms"] / row["matvec_ms"]
    row["ratio_to_naive"] = row["exact_ms"] / row["naive_greedy_ms"]
    row["greedy_ratio_to_scan"] = row["exact_no_swap_ms"] / row["matvec_ms"]
    row["greedy_ratio_to_naive"] = row["exact_no_swap_ms"] / row["naive_greedy_ms"]
    checked = queries[:8]
    pairs = [
        (select(pool, q, k, refine=False).indices, naive_numpy_greedy(vectors, q, k, 0.2))
        for q in checked
    ]
    row["naive_agrees_with_exact"] = all(ours == naive for ours, naive in pairs)
    row["naive_checked"] = len(pairs)
    row["naive_agreeing"] = sum(ours == naive for ours, naive in pairs)
    gaps = [
        divergence_gap(vectors, q, ours, naive, 0.2)
        for q, (ours, naive) in zip(checked, pairs, strict=True)
        if ours != naive
    ]
    # A disagreement is a float32 tie when, at the first step the subsets part, the two
    # picks' step scores differ by less than float32 kernel values can resolve.
    row["naive_float32_ties"] = sum(gap < FLOAT32_TIE for gap in gaps)
    row["naive_max_divergence_gap"] = max(gaps, default=0.0)
    row["median_searched"] = float(
        np.median([select(pool, q, k, refine=False).region_size for q in checked])
    )
    if batch:
        block = queries[:batch]
        row["batch"] = len(block)
        row["batch_s"] = median_seconds(lambda: select_batch(pool, block, k), max(1, few // 2))
        row["batch_per_query_ms"] = 1e3 * row["batch_s"] / len(block)
    return row


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


# Float32 kernel values of unit vectors carry errors of about 1e-7 (the inner product's
# rounding, times 1/tau = 5 through the exponential): step scores closer than this are ties
# that two float32 computations may break either way.
FLOAT32_TIE = 1e-6


def divergence_gap(
    pool: np.ndarray, query: np.ndarray, ours: list[int], naive: list[int], tau: float
) -> float:
    """At the first step where the subsets ``ours`` and ``naive`` part, the float64 gap
    between the two picks' greedy step scores,
    ``s(c) = (sum_chosen + 2 r(c) + 1) / t^2 - 2 (sum_affinity + a(c)) / t`` over the shared
    prefix (``t`` the step, ``r(c)`` the candidate's kernel sum with the prefix, ``a(c)``
    its kernel with ``query``): how far from a tie the two float32 computations broke."""
    step = next(i for i, (a, b) in enumerate(zip(ours, naive, strict=True)) if a != b)
    rows = pool.astype(np.float64)
    prefix = rows[ours[:step]]

    def kernel(inner: np.ndarray) -> np.ndarray:
        return np.exp((inner - 1.0) / tau)

    sum_chosen = float(kernel(prefix @ prefix.T).sum())
    sum_affinity = float(kernel(prefix @ query.astype(np.float64)).sum())
    t = step + 1

    def score(candidate: int) -> float:
        redundancy = float(kernel(prefix @ rows[candidate]).sum())
        affinity = float(kernel(rows[candidate] @ query.astype(np.float64)))
        return (sum_chosen + 2 * redundancy + 1) / t**2 - 2 * (sum_affinity + affinity) / t

    return abs(score(ours[step]) - score(naive[step]))


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pool_scan(pool: Pool, vectors: np.ndarray) -> Callable[[np.ndarray], object]:
    """The floor of an exact selection on ``pool``'s device: one float32 product of the pool,
    ``(n, d)``, with a query, ``(d,)`` (on a GPU: the query's upload and a synchronisation
    included, as a selection has them)."""
    if pool.device.type == "cpu":
        return lambda query: vectors @ query
    device_vectors = pool.vectors

    def scan(query: np.ndarray) -> object:
        scores = device_vectors @ torch.from_numpy(query).to(pool.device)
        torch.cuda.synchronize(pool.device)
        return scores

    return scan


def measure_size(
    size: int,
    queries: np.ndarray,
    k: int,
    batch: int,
    repeats: int,
    peers: bool,
    device: torch.device,
) -> dict[str, float | bool | None]:
    """Median milliseconds per single-query selection for every contender on one pool
    (mmdshot's and the floor on ``device``; the others, CPU-only, only when it is the CPU)."""
    vectors = clustered_unit_vectors(size, queries.shape[1], 0)
    pool = Pool.from_arrays(vectors, normalized=True, device=device)
    on_cpu = device.type == "cpu"
    cycle = iter(range(10**9))

    def query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    few = max(3, repeats // 5)
    scan = pool_scan(pool, vectors)
    row: dict[str, float | bool | None] = {
        "matvec_ms": 1e3 * median_seconds(lambda: scan(query()), repeats),
        "naive_greedy_ms": 1e3
        * median_seconds(lambda: naive_numpy_greedy(vectors, query(), k, 0.2), few)
        if on_cpu
        else None,
        "exact_ms": 1e3 * median_seconds(lambda: select(pool, query(), k), repeats),
        "exact_no_swap_ms": 1e3
        * median_seconds(lambda: select(pool, query(), k, refine=False), repeats),
        "batch_per_query_ms": 1e3
        * median_seconds(lambda: select_batch(pool, queries[:batch], k), few)
        / batch,
    }
    row["naive_agrees_with_exact"] = select(
        pool, queries[0], k, refine=False
    ).indices == naive_numpy_greedy(vectors, queries[0], k, 0.2)
    if peers and on_cpu:
        # Imported here: OpenICL's import (datasets, evaluate, nltk) takes about 10 s.
        from bench.peers import PrecomputedTopkRetriever, langchain_selectors

        for name, peer in langchain_selectors(vectors, queries, k).items():

            def ask(peer: BaseExampleSelector = peer) -> object:
                return peer.select_examples({"input": f"query {next(cycle) % len(queries)}"})

            row[f"{name}_ms"] = 1e3 * median_seconds(ask, few)
        topk = PrecomputedTopkRetriever(vectors, k)
        row["openicl_topk_ms"] = 1e3 * median_seconds(lambda: topk.select(query()[None]), repeats)
        row["openicl_topk_batch_per_query_ms"] = (
            1e3 * median_seconds(lambda: topk.select(queries[:batch]), few) / batch
        )
    if size >= 50_000 and on_cpu:
        started = time.perf_counter()
        index = PoolIndex.build(vectors, PrefilterConfig(kind="ivf", approximate_above=10_000))
        row["index_build_s"] = time.perf_counter() - started
        indexed = Pool.from_arrays(vectors, index=index, normalized=True)
        row["prefiltered_ms"] = 1e3 * median_seconds(lambda: select(indexed, query(), k), repeats)
        pairs = [(select(indexed, q, k).mmd2, select(pool, q, k).mmd2) for q in queries[:10]]
        row["prefilter_mmd2_excess_pct"] = 100 * (
            float(np.mean([a for a, _ in pairs])) / float(np.mean([b for _, b in pairs])) - 1
        )
    return row


def measure_tweets(k: int, repeats: int, limit: int | None) -> dict[str, float | int]:
    """The same on real MiniLM embeddings: the tweet corpus as the pool, held-out tweets as
    queries (a topic-homogeneous corpus, the hard case for the exactness certificate)."""
    _, vectors = tweet_embeddings(limit)
    queries, pool_vectors = vectors[:64], np.ascontiguousarray(vectors[64:])
    pool = Pool.from_arrays(pool_vectors, normalized=True)
    cycle = iter(range(10**9))

    def query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    regions = [select(pool, q, k).region_size for q in queries[:20]]
    return {
        "pool_size": len(pool_vectors),
        "matvec_ms": 1e3 * median_seconds(lambda: pool_vectors @ query(), repeats),
        "exact_ms": 1e3 * median_seconds(lambda: select(pool, query(), k), repeats),
        "naive_greedy_ms": 1e3
        * median_seconds(lambda: naive_numpy_greedy(pool_vectors, query(), k, 0.2), repeats),
        "median_region": float(np.median(regions)),
    }


def run(
    sizes: Sequence[int],
    peer_sizes: Sequence[int],
    batch: int,
    repeats: int,
    k: int = 8,
    tweets: int | None = None,
    device: str = "cpu",
    kind_sizes: Sequence[int] = (),
    kinds: Sequence[str] = KINDS,
) -> dict:
    """Every pool size, then (on the CPU) the real tweets and every data kind (each with a
    batch of ``batch`` queries)."""
    resolved = resolve_device(device)
    queries = clustered_unit_vectors(max(batch, 64), 384, 1)
    result = {
        "dimension": 384,
        "k": k,
        "batch": batch,
        "device": str(resolved),
        "sizes": {
            str(size): measure_size(size, queries, k, batch, repeats, size in peer_sizes, resolved)
            for size in sizes
        },
    }
    if resolved.type == "cpu":
        if "tweets" in kinds:
            result["tweets"] = measure_tweets(k, repeats, tweets)
        result["kinds"] = measure_kinds(kind_sizes, k, repeats, tweets, batch, kinds)
        result["peer_versions"] = package_versions(("langchain-core", "openicl"))
    return result


def plot(result: dict, path: Path) -> None:
    """Log-log time per query against pool size, with the one-scan floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(size) for size in result["sizes"])
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series = [
        ("matvec_ms", "one scan of the pool (floor)", "k--"),
        ("exact_ms", "mmdshot exact", "o-"),
        ("batch_per_query_ms", f"mmdshot exact, batch of {result['batch']} (per query)", "s-"),
        ("prefiltered_ms", "mmdshot + IVF prefilter", "^-"),
        ("naive_greedy_ms", "naive numpy greedy", "x-"),
        ("langchain_semantic_ms", "LangChain SemanticSimilarity", "v:"),
        ("langchain_mmr_ms", "LangChain MaxMarginalRelevance", "d:"),
        ("openicl_topk_ms", "OpenICL TopkRetriever", "<:"),
        (
            "openicl_topk_batch_per_query_ms",
            f"OpenICL TopkRetriever, batch of {result['batch']} (per query)",
            ">:",
        ),
    ]
    for key, label, style in series:
        points = [(s, result["sizes"][str(s)].get(key)) for s in sizes]
        points = [(s, v) for s, v in points if v is not None]
        if points:
            axes.plot(*zip(*points, strict=True), style, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("pool size (candidates, d = 384)")
    axes.set_ylabel("ms per single-query selection (median)")
    device = result.get("environment", {}).get("device") or result.get("device", "cpu")
    axes.set_title(f"Selection time, k = {result['k']}, on {device}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(
    path: Path,
    quick: bool = False,
    device: str = "cpu",
    sizes: Sequence[int] | None = None,
    kinds: Sequence[str] = KINDS,
) -> dict:
    """Run (tiny sizes when ``quick``; ``sizes`` instead of 10k, 100k and 1M when given) on
    ``device``, write the JSON result to ``path`` and the plot (docs/img/speed.png, or
    speed-gpu.png off the CPU)."""
    if quick:
        result = run(
            sizes=(2_000, 60_000),
            peer_sizes=(2_000,),
            batch=8,
            repeats=3,
            tweets=300,
            device=device,
            kind_sizes=(2_000, 20_000),
            kinds=kinds,
        )
    else:
        chosen = tuple(sizes) if sizes else (10_000, 100_000, 1_000_000)
        result = run(
            sizes=chosen,
            peer_sizes=tuple(size for size in chosen if size <= 100_000),
            batch=256,
            repeats=30,
            device=device,
            kind_sizes=chosen,
            kinds=kinds,
        )
    save_result(path, result)
    image = "speed" if result["device"] == "cpu" else "speed-gpu"
    plot(result, path.parent / (f"{image}-quick.png" if quick else f"../img/{image}.png"))
    return result
