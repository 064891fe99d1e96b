"""Where one problem's direct greedy stops paying (``python -m bench.direct_path``).

On a pool of at most ``selector.regions.DIRECT_POOL`` candidates, a single selection runs the
greedy over the whole pool (one matrix-vector product a step); above it, it speculates on the
top of the ranking and verifies (selector/regions.py). This times both paths on the same
pools and queries, alternating call by call (``DIRECT_POOL`` set either way), with the naive
numpy greedy of bench/speed.py beside them, on isotropic, clustered and near-duplicate unit
vectors of 1,000 to 8,000 rows (d = 384, k = 8, greedy only: no refinement). It checks that
both paths choose the same subset (or part at a float32 tie: the float64 gap between their
picks' step scores below ``bench.speed.FLOAT32_TIE``) and writes medians and ratios to
``docs/results/direct-path.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import selector.regions as regions
from bench.environment import save_result
from bench.speed import (
    FLOAT32_TIE,
    clustered_unit_vectors,
    divergence_gap,
    isotropic_unit_vectors,
    naive_numpy_greedy,
    near_duplicate_unit_vectors,
)
from selector import Pool, select

RESULT = Path("docs/results/direct-path.json")
KINDS: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "isotropic": isotropic_unit_vectors,
    "clustered": clustered_unit_vectors,
    "near-duplicates": near_duplicate_unit_vectors,
}


def compare(kind: str, n: int, calls: int, k: int = 8) -> dict[str, object]:
    """Median ms per call of the direct path, the speculated path and the naive greedy on one
    pool of ``kind`` (``calls`` calls each, interleaved; the first tenth is warm-up)."""
    vectors = KINDS[kind](n, 384, 1)
    queries = KINDS[kind](64, 384, 2)
    pool = Pool.from_arrays(vectors, normalized=True, device="cpu")
    saved = regions.DIRECT_POOL
    seconds: dict[str, list[float]] = {"direct": [], "speculated": [], "naive": []}
    differ = 0
    widest_gap = 0.0  # the float64 score gap where the two paths parted
    try:
        for call in range(calls):
            query = queries[call % len(queries)]
            chosen = {}
            for path in seconds:
                regions.DIRECT_POOL = n if path == "direct" else 0
                started = time.perf_counter()
                if path == "naive":
                    naive_numpy_greedy(vectors, query, k, 0.2)
                else:
                    chosen[path] = select(pool, query, k, refine=False).indices
                seconds[path].append(time.perf_counter() - started)
            if chosen["direct"] != chosen["speculated"]:
                differ += 1
                gap = divergence_gap(vectors, query, chosen["direct"], chosen["speculated"], 0.2)
                widest_gap = max(widest_gap, gap)
    finally:
        regions.DIRECT_POOL = saved
    medians = {
        path: 1e3 * statistics.median(values[calls // 10 :]) for path, values in seconds.items()
    }
    return {
        "kind": kind,
        "n": n,
        **{f"{path}_ms": round(value, 3) for path, value in medians.items()},
        "direct_over_speculated": round(medians["direct"] / medians["speculated"], 3),
        "direct_over_naive": round(medians["direct"] / medians["naive"], 3),
        "calls_that_differ": differ,
        "widest_gap_where_they_differ": widest_gap,
        "same_up_to_float32_ties": widest_gap < FLOAT32_TIE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 2_000, 4_000, 8_000])
    args = parser.parse_args()
    rows = []
    for kind in KINDS:
        for n in args.sizes:
            rows.append(compare(kind, n, args.calls))
            print(rows[-1], flush=True)
    save_result(RESULT, {"direct_pool": regions.DIRECT_POOL, "k": 8, "rows": rows})


if __name__ == "__main__":
    main()
