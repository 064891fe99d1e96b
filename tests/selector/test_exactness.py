"""The library's greedy is the naive greedy (tests/selector/reference.py), for every kernel,
input-only or joint with labels or free-text outputs, one query, a weighted target set or a
batch, on a region that holds the pool or one that must grow (the exactness certificate,
cosine's negative redundancy bound included)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from selector import SelectionResult, select, select_batch
from tests.selector.reference import (
    NaiveProblem,
    Outputs,
    estimated_outputs,
    naive_greedy,
    naive_mmd2,
    naive_problem,
    one_hot,
    unit_rows,
)

KERNELS = ["softmax", "rbf", "laplace", "cosine"]
TAU = {"softmax": 0.2, "rbf": 0.3, "laplace": 0.6, "cosine": 1.0}  # cosine has no bandwidth
SIDES = ["inputs", "labels", "free_text"]
OUTPUT_TAU = 0.2  # the library's default softmax bandwidth on output embeddings
K = 6
TIE_FREE = 1e-6  # smallest step gap of the naive greedy: well above the float32 rounding of a step


class Data:
    """A pool of ``n`` random unit rows in ``d`` dimensions with 3 labels and 4-d output
    embeddings, and the select arguments of one output ``side``."""

    def __init__(self, seed: int, side: str, n: int = 600, d: int = 6) -> None:
        rng = np.random.default_rng(seed)
        self.pool = unit_rows(rng.standard_normal((n, d)))
        self.side = side
        self.labels = rng.integers(0, 3, n)
        self.outputs = unit_rows(rng.standard_normal((n, 4)))
        self.rng = rng

    def arguments(self) -> dict:
        if self.side == "labels":
            return {"labels": self.labels}
        if self.side == "free_text":
            return {"output_embeddings": self.outputs}
        return {}

    def problem(
        self, name: str, target: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[NaiveProblem, Outputs | None]:
        outputs = None
        if self.side == "labels":
            outputs = estimated_outputs(self.pool, target, one_hot(self.labels, 3), "cosine")
        elif self.side == "free_text":
            outputs = estimated_outputs(self.pool, target, self.outputs, "softmax", OUTPUT_TAU)
        return naive_problem(name, TAU[name], self.pool, target, weights, outputs), outputs


def assert_naive_greedy(result: SelectionResult, problem: NaiveProblem) -> None:
    expected, gap = naive_greedy(problem, K)
    assert gap > TIE_FREE  # the problem is well posed: no near tie for float32 to break
    assert result.indices == expected
    assert result.mmd2 == pytest.approx(max(problem.mmd2(expected), 0.0), abs=1e-5)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("region", [None, 8])
def test_single_selection_is_the_naive_greedy(name: str, side: str, region: int | None) -> None:
    data = Data(100 + KERNELS.index(name), side)
    query = unit_rows(data.rng.standard_normal((1, 6)))
    target_set = unit_rows(data.rng.standard_normal((3, 6)))
    weights = np.array([0.5, 0.3, 0.2])
    options = {"kernel": name, "tau": TAU[name], "refine": False, "initial_region": region}
    sizes = []
    for target, target_weights in ((query, None), (target_set, weights)):
        result = select(
            data.pool, target, K, target_weights=target_weights, **options, **data.arguments()
        )
        problem, _ = data.problem(name, target, target_weights)
        assert_naive_greedy(result, problem)
        sizes.append(result.region_size)
    if region is not None:
        assert max(sizes) > region  # a certificate failed and its region grew


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("side", SIDES)
def test_batch_selection_is_the_naive_greedy(name: str, side: str) -> None:
    data = Data(200 + KERNELS.index(name), side, d=24)
    queries = unit_rows(data.rng.standard_normal((16, 24)))
    options = {"kernel": name, "tau": TAU[name], "refine": False, "initial_region": 8}
    batch = select_batch(data.pool, queries, K, **options, **data.arguments())
    assert len(batch) == len(queries)
    for query, result in zip(queries, batch, strict=True):
        problem, _ = data.problem(name, query[None])
        assert_naive_greedy(result, problem)
    assert max(result.region_size for result in batch) > 8


@pytest.mark.parametrize("name", KERNELS)
def test_the_naive_problem_is_the_double_loop_mmd(name: str) -> None:
    """The vectorised reference the greedy is built on gives the double-loop MMD^2 of any
    subset, joint with free-text outputs (where the estimate mixes 16 neighbours' outputs)."""
    data = Data(300, "free_text", n=40)
    target = unit_rows(data.rng.standard_normal((2, 6)))
    weights = np.array([0.7, 0.3])
    problem, outputs = data.problem(name, target, weights)
    assert outputs is not None
    for _ in range(5):
        subset = data.rng.choice(40, 4, replace=False)
        chosen_outputs = replace(outputs, candidate=outputs.candidate[subset])
        expected = naive_mmd2(
            name, TAU[name], data.pool[subset], target, weights, outputs=chosen_outputs
        )
        assert problem.mmd2(subset.tolist()) == pytest.approx(expected, abs=1e-12)


def opposed_pool(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cosine problem whose greedy leaves the top of the affinity at its second step: the
    query ``e_1``, 8 candidates around 0.6 rad from it (affinity 0.83: the top 8), 8 around
    -1.27 rad (affinity 0.3, but redundancy -0.29 with the first pick) and 100 near ``+-e_3``
    (affinity about 0). Returns the pool, the query and the far candidates' indices."""
    rng = np.random.default_rng(seed)

    def around(angle: float, count: int) -> np.ndarray:
        rows = np.zeros((count, 5))
        rows[:, 0], rows[:, 1] = np.cos(angle), np.sin(angle)
        return rows + 0.02 * rng.standard_normal((count, 5))

    filler = np.zeros((100, 5))
    filler[:, 2] = rng.choice([-1.0, 1.0], 100)
    filler += 0.05 * rng.standard_normal((100, 5))
    pool = unit_rows(np.concatenate([around(0.6, 8), around(-1.266, 8), filler]))
    order = rng.permutation(len(pool))
    query = np.eye(5)[:1]
    return pool[order], query, np.flatnonzero((order >= 8) & (order < 16))


def test_cosine_greedy_leaves_the_top_of_the_affinity() -> None:
    """Cosine values can be negative, so a candidate outside the region may lower the sum of
    redundancies: the certificate has to allow for that (or stop at the top 8 and miss the
    greedy's second pick), single and batch."""
    pool, query, far = opposed_pool(0)
    problem = naive_problem("cosine", 1.0, pool, query)
    expected, gap = naive_greedy(problem, 3)
    assert expected[1] in far and gap > TIE_FREE
    options = {"kernel": "cosine", "refine": False, "initial_region": 8}
    single = select(pool, query, 3, **options)
    batch = select_batch(pool, np.repeat(query, 2, axis=0), 3, **options)
    for result in (single, *batch):
        assert result.indices == expected and result.region_size > 8
        assert result.mmd2 == pytest.approx(max(problem.mmd2(expected), 0.0), abs=1e-6)
