"""Batch selection on dense clustered pools, for before/after comparisons of a change.

``python -m bench.batch OUT.json [--device cuda] [--queries 256]`` times ``select_batch`` over
pools of 100k and 1M clustered vectors with whatever ``selector`` is first on the path. Run it
twice in one sitting, once with ``PYTHONPATH`` pointing at the old code's checkout, to compare
two versions side by side (``docs/results/batch-rounds.json`` holds such a pair).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import selector
from bench.speed import clustered_unit_vectors
from selector import Pool, select_batch


def measure(
    sizes: tuple[int, ...], queries: int, repeats: int, device: str
) -> dict[str, dict[str, float]]:
    """Median ms per query of one ``select_batch`` of ``queries`` queries, k = 8, d = 384,
    with the mean MMD^2 and median region size (the answers must not change)."""
    points = clustered_unit_vectors(queries, 384, 1)
    out = {}
    for size in sizes:
        vectors = clustered_unit_vectors(size, 384, 0)
        pool = Pool.from_arrays(vectors, normalized=True, device=device)
        select_batch(pool, points[:4], 8)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            results = select_batch(pool, points, 8)
            times.append(time.perf_counter() - started)
        out[str(size)] = {
            "batch_per_query_ms": 1e3 * statistics.median(times) / queries,
            "mean_mmd2": float(np.mean([r.mmd2 for r in results])),
            "median_region": float(np.median([r.region_size for r in results])),
        }
        print(size, out[str(size)], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("selector from", selector.__file__)
    result = {
        "selector": selector.__file__,
        "device": args.device,
        "queries": args.queries,
        "sizes": measure((100_000, 1_000_000), args.queries, args.repeats, args.device),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
