"""Whether the host search's pool products should go through torch's BLAS
(``python -m bench.products``).

A single selection on the CPU computes its big products through numpy's BLAS (OpenBLAS in the
wheels): the pool scan, a matrix-vector product (`selector.pool.Pool.inner_products`), and the
verification products of a region with a few chosen rows
(`selector.search.CandidateRegion.host_columns`), with torch held to one thread
(`selector.device.search_threads`). The torch wheel's BLAS (MKL on x86) reads a tall
``(n, d)`` matrix faster in one layout, ``(n, d) @ (P, d).T`` with two threads, than
OpenBLAS's matrix-vector product does. This measures, in one process:

1. *products*: median ms of each way of computing the product of a pool of ``n`` isotropic
   unit rows (d = 384) with ``P`` rows, ``P`` in 1, 2 and 8: numpy, and torch with two threads
   in three layouts (``mm(X, R.T)`` with ``R: (P, d)`` contiguous, ``mm(X, C)`` with
   ``C: (d, P)`` contiguous, ``mv``);
2. *selections*: median ms of a greedy selection (``refine=False``, k = 8) as the library
   runs it, against the same with the scan and the verification products of regions of at
   least ``--columns-from`` rows through torch's ``mm(X, R.T)`` with two threads (the scan
   with the query twice: MKL's one-column product takes its slow path), alternating in
   rounds, on the four data kinds of ``bench speed``; whether both choose the same subsets
   (or part at a float32 tie, as ``bench speed`` counts them).

It writes ``docs/results/products.json``. The quick mode (small pools, few calls) runs in the
test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.environment import save_result
from bench.speed import (
    FLOAT32_TIE,
    KINDS,
    divergence_gap,
    isotropic_unit_vectors,
    kind_data,
    median_seconds,
)
from selector import Pool, select
from selector.search import CandidateRegion

RESULT = Path("docs/results/products.json")
K = 8


def median_ms(function: Callable[[], object], repeats: int) -> float:
    """:func:`bench.speed.median_seconds` in milliseconds."""
    return 1e3 * median_seconds(function, repeats)


def torch_product(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``matrix: (n, d) @ rows: (P, d) -> (n, P)`` through torch's BLAS with two threads (the
    caller's thread count restored)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return torch.mm(matrix, rows.T)
    finally:
        torch.set_num_threads(saved)


def product_ways(
    vectors: np.ndarray, matrix: torch.Tensor, count: int
) -> dict[str, Callable[[], object]]:
    """The ways of the product of ``vectors: (n, d)`` (``matrix`` the same as a tensor) with
    its first ``count`` rows, by name."""
    rows = vectors[:count].copy()
    tensor_rows = torch.from_numpy(rows)
    columns = tensor_rows.T.contiguous()
    ways: dict[str, Callable[[], object]] = {}
    if count == 1:
        ways["numpy_mv"] = lambda: vectors @ rows[0]
        ways["torch_mv"] = lambda: torch.mv(matrix, tensor_rows[0])
    ways[f"numpy_P{count}"] = lambda: vectors @ rows.T
    ways[f"torch_mm_rows_T_P{count}"] = lambda: torch.mm(matrix, tensor_rows.T)
    ways[f"torch_mm_columns_P{count}"] = lambda: torch.mm(matrix, columns)
    return ways


def product_times(n: int, repeats: int) -> dict[str, float]:
    """Median ms of every way of the product of ``n`` unit rows with P of them (module
    docstring, part 1)."""
    vectors = isotropic_unit_vectors(n, 384, 0)
    matrix = torch.from_numpy(vectors)
    times: dict[str, float] = {}
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for count in (1, 2, 8):
            for name, way in product_ways(vectors, matrix, count).items():
                times[name] = median_ms(way, repeats)
    finally:
        torch.set_num_threads(saved)
    return {name: round(value, 4) for name, value in times.items()}


@contextlib.contextmanager
def torch_products(columns_from: int) -> Iterator[None]:
    """Inside the block, a CPU pool's single-query scan and the verification products of
    regions of at least ``columns_from`` rows (input-only kernels) go through
    :func:`torch_product`."""
    scan, columns = Pool.inner_products, CandidateRegion.host_columns

    def inner_products(self: Pool, queries: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cpu" or queries.shape[0] != 1:
            return scan(self, queries)
        query = queries.detach().to(torch.float32)
        return torch_product(self.vectors, torch.cat([query, query]))[:, :1].T.contiguous()

    def host_columns(self: CandidateRegion, positions: Sequence[int]) -> np.ndarray:
        plain = self.output_vectors is None and self.output_labels is None
        if not plain or self.size < columns_from or len(positions) < 2:
            return columns(self, positions)
        vectors = self.vectors[0]
        inner = torch_product(vectors, vectors[list(positions)]).T.numpy()
        return self.kernel.host_from_inner(inner)

    Pool.inner_products = inner_products  # type: ignore[method-assign]
    CandidateRegion.host_columns = host_columns  # type: ignore[method-assign]
    try:
        yield
    finally:
        Pool.inner_products = scan  # type: ignore[method-assign]
        CandidateRegion.host_columns = columns  # type: ignore[method-assign]


def selection_times(
    kind: str, n: int, repeats: int, rounds: int, columns_from: int, tweets: int | None
) -> dict[str, Any]:
    """Median ms of selections either way on one pool of ``kind`` (module docstring, part 2),
    the two floors beside them, and their agreement on 8 queries."""
    vectors, queries, _ = kind_data(kind, n, 384, tweets, 64)
    pool = Pool.from_arrays(vectors, normalized=True, device="cpu")
    matrix = torch.from_numpy(vectors)
    cycle = iter(range(10**9))

    def query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    parted = 0
    widest_gap = 0.0
    for row in queries[:8]:
        numpy_way = select(pool, row, K, refine=False).indices
        with torch_products(columns_from):
            torch_way = select(pool, row, K, refine=False).indices
        if numpy_way != torch_way:
            parted += 1
            widest_gap = max(widest_gap, divergence_gap(vectors, row, numpy_way, torch_way, 0.2))
    runs: dict[str, list[float]] = {
        "scan_numpy_ms": [],
        "scan_torch_ms": [],
        "numpy_ms": [],
        "torch_ms": [],
    }
    pair = torch.from_numpy(np.ascontiguousarray(queries[:2]))
    for _ in range(rounds):
        runs["scan_numpy_ms"].append(median_ms(lambda: vectors @ query(), repeats))
        runs["scan_torch_ms"].append(median_ms(lambda: torch_product(matrix, pair), repeats))
        runs["numpy_ms"].append(median_ms(lambda: select(pool, query(), K, refine=False), repeats))
        with torch_products(columns_from):
            runs["torch_ms"].append(
                median_ms(lambda: select(pool, query(), K, refine=False), repeats)
            )
    medians = {name: round(statistics.median(values), 4) for name, values in runs.items()}
    return {
        "kind": kind,
        "n": n,
        **medians,
        "torch_over_numpy": round(medians["torch_ms"] / medians["numpy_ms"], 3),
        "queries_checked": 8,
        "queries_that_part": parted,
        "same_up_to_float32_ties": widest_gap < FLOAT32_TIE,
    }


def run(quick: bool = False, columns_from: int = 30_000) -> dict[str, Any]:
    """Both parts at the sizes of the full run (10,000, 100,000, 1,000,000 products;
    100,000-candidate selections) or, ``quick``, tiny ones."""
    product_sizes = (2_000,) if quick else (10_000, 100_000, 1_000_000)
    selection_sizes = (6_000,) if quick else (100_000,)
    repeats, rounds = (5, 1) if quick else (40, 3)
    limit = 300 if quick else None  # tweets: 300 tiled, or all of them
    columns_from = 0 if quick else columns_from  # quick: every verification product
    products = {}
    for n in product_sizes:
        products[str(n)] = product_times(n, repeats if n <= 100_000 else max(3, repeats // 4))
        print(n, products[str(n)], flush=True)
    selections = []
    for n in selection_sizes:
        for kind in KINDS:
            selections.append(selection_times(kind, n, repeats, rounds, columns_from, limit))
            print(selections[-1], flush=True)
    return {
        "k": K,
        "columns_from": columns_from,
        "products": products,
        "selections": selections,
        "quick": quick,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--columns-from", type=int, default=30_000)
    args = parser.parse_args()
    result = run(args.quick, args.columns_from)
    if not args.quick:
        save_result(RESULT, result)


if __name__ == "__main__":
    main()
