"""One problem's exact search by speculation and verification (selector/regions.py) gives the
naive greedy's subset on every kind of data, for every kernel, with the joint kernel and
static masks, whether the verification set is a threshold set or the whole pool."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selector.regions as regions
from selector import Constraints, Pool, select, select_batch
from selector.search import CandidateRegion
from tests.selector.paths import SEARCH_PATHS, search_path
from tests.selector.reference import kernel_value, unit_rows


def pool_of(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    """``isotropic`` random unit rows, ``clustered`` (50 loose clusters) or ``duplicates``
    (tight clusters of about 300 near-copies: a region of the top holds one cluster only)."""
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        points = rng.standard_normal((n, d))
    elif kind == "clustered":
        points = rng.standard_normal((50, d))[rng.integers(0, 50, n)]
        points = points + 0.6 * rng.standard_normal((n, d))
    else:
        centres = unit_rows(rng.standard_normal((max(n // 300, 2), d)))
        points = centres[rng.integers(0, len(centres), n)]
        points = points + 0.03 / np.sqrt(d) * rng.standard_normal((n, d))
    return unit_rows(points).astype(np.float32)


def naive_greedy(
    kernel: str,
    tau: float,
    pool: np.ndarray,
    target: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    distribution: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> list[int]:
    """The textbook greedy in float64 over the whole pool: at every step, the exact MMD^2
    (minus the target's constant) of the chosen set plus each candidate, the lowest taken."""
    x = pool.astype(np.float64)
    n = len(x)
    w = np.full(len(target), 1.0 / len(target)) if weights is None else weights / weights.sum()

    def column(y: np.ndarray) -> np.ndarray:
        return np.array([kernel_value(kernel, tau, row, y) for row in x])

    affinity = sum(
        w_j
        * column(q.astype(np.float64))
        * (1.0 if labels is None or distribution is None else distribution[labels])
        for w_j, q in zip(w, target, strict=True)
    )
    allowed = np.ones(n, dtype=bool) if allowed is None else allowed.copy()
    redundancy = np.zeros(n)
    chosen: list[int] = []
    sum_chosen = sum_affinity = 0.0
    for step in range(1, k + 1):
        values = (sum_chosen + 2.0 * redundancy + 1.0) / step**2 - 2.0 * (
            sum_affinity + affinity
        ) / step
        values[~allowed] = np.inf
        best = int(np.argmin(values))
        chosen.append(best)
        allowed[best] = False
        sum_chosen += 2.0 * redundancy[best] + 1.0
        sum_affinity += affinity[best]
        new = column(x[best])
        if labels is not None:
            new = new * (labels == labels[best])
        redundancy += new
    return chosen


@pytest.fixture(params=SEARCH_PATHS)
def verification(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the tests with verification sets cut by the threshold (as on a large pool), with
    the whole pool as the verification set (as on a smaller one), and with the direct
    greedy of the smallest pools."""
    with search_path(request.param):
        yield str(request.param)


@pytest.mark.parametrize("kind", ["isotropic", "clustered", "duplicates"])
@pytest.mark.parametrize(("kernel", "tau"), [("softmax", 0.2), ("rbf", 0.3), ("cosine", 1.0)])
def test_verified_greedy_is_the_naive_greedy(
    verification: str, kind: str, kernel: str, tau: float
) -> None:
    pool = pool_of(kind, 1500, 24, seed=3)
    queries = pool_of(kind, 4, 24, seed=4)
    for query in queries:
        result = select(pool, query, 6, kernel=kernel, tau=tau, refine=False, initial_region=16)
        assert result.indices == naive_greedy(kernel, tau, pool, query[None], 6)
        # The direct greedy holds the pool; a speculation on 16 verifies on all of it.
        if verification == "direct" or (verification == "whole pool" and result.region_size != 16):
            assert result.region_size == 1500


def test_near_duplicates_cost_a_few_products_not_one_per_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A query next to a cluster of near-copies: the top region holds that cluster only, the
    certificate fails there, and the verification set is most of the pool. The search still
    takes a few matrix products with the verification set (each covering the steps left),
    not a pass over the pool per step as growing regions did."""
    monkeypatch.setattr(regions, "SMALL_POOL", 0)
    monkeypatch.setattr(regions, "DIRECT_POOL", 0)
    products: list[int] = []
    original = CandidateRegion.host_columns

    def counted(region: CandidateRegion, positions: Sequence[int]) -> np.ndarray:
        products.append(region.size)
        return original(region, positions)

    monkeypatch.setattr(CandidateRegion, "host_columns", counted)
    pool = pool_of("duplicates", 6000, 32, seed=5)
    noise = np.random.default_rng(6).standard_normal((3, 32)) / np.sqrt(32)
    for row, query in zip((0, 100, 200), unit_rows(pool[[0, 100, 200]] + 0.3 * noise), strict=True):
        products.clear()
        result = select(pool, query, 8, refine=False, initial_region=64)
        assert result.indices == naive_greedy("softmax", 0.2, pool, query[None], 8), row
        assert result.region_size > 64  # the certificate failed on the top 64
        assert 1 <= len(products) <= 4


def test_joint_kernel_target_sets_and_static_masks(verification: str) -> None:
    pool = pool_of("duplicates", 1200, 16, seed=7)
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, len(pool))
    target = pool_of("duplicates", 3, 16, seed=9)
    weights = np.array([0.5, 0.3, 0.2])
    distribution = np.array([0.6, 0.3, 0.1])
    excluded = rng.choice(len(pool), 200, replace=False)
    allowed = np.ones(len(pool), dtype=bool)
    allowed[excluded] = False
    order = list(dict.fromkeys(labels.tolist()))  # the pool's labels by first appearance
    result = select(
        pool,
        target,
        6,
        target_weights=weights,
        labels=labels,
        target_label_distribution=distribution[order],
        constraints=Constraints(exclude=excluded.tolist()),
        refine=False,
        initial_region=12,
    )
    reference = naive_greedy(
        "softmax", 0.2, pool, target, 6, weights, labels, distribution, allowed
    )
    assert result.indices == reference


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["isotropic", "clustered", "duplicates"]),
    k=st.integers(1, 9),
    initial=st.sampled_from([4, 16, 64]),
)
def test_verified_greedy_property(seed: int, kind: str, k: int, initial: int) -> None:
    pool = pool_of(kind, 900, 12, seed)
    query = pool_of(kind, 1, 12, seed + 1)[0]
    result = select(pool, query, k, refine=False, initial_region=initial)
    assert result.indices == naive_greedy("softmax", 0.2, pool, query[None], k)


@pytest.mark.parametrize("kind", ["isotropic", "duplicates"])
@pytest.mark.parametrize("excluded", [0, 900])
def test_a_batch_row_refines_as_the_single_call(
    verification: str, kind: str, excluded: int
) -> None:
    """The batch grows regions fourfold; a single call verifies instead, and still refines
    on the region fourfold growth would have certified (its allowed candidates only, also
    when the verification set is the whole pool): the same answers, refined, and the same
    knn baseline."""
    pool = Pool.from_arrays(pool_of(kind, 3000, 16, seed=10))
    queries = pool_of(kind, 12, 16, seed=11)
    constraints = Constraints(exclude=list(range(0, 3 * excluded, 3)))
    batch = select_batch(
        pool, queries, 6, initial_region=8, constraints=constraints, compare_baselines=True
    )
    for row, result in enumerate(batch):
        single = select(
            pool, queries[row], 6, initial_region=8, constraints=constraints, compare_baselines=True
        )
        assert single.baselines["knn"] == pytest.approx(result.baselines["knn"], abs=1e-9)
        assert single.indices == result.indices
        assert single.mmd2 == pytest.approx(result.mmd2, abs=1e-9)


@pytest.mark.parametrize("kind", ["isotropic", "clustered", "duplicates"])
def test_refinement_does_not_depend_on_the_path(kind: str) -> None:
    """Swap refinement draws on the same candidates whichever path found the greedy: the
    refined subset of the direct greedy and of speculation is the same, and so are the ranked
    alternatives (as sets: the beam lists a subset in its region's order)."""
    pool = pool_of(kind, 1500, 24, seed=7)
    queries = pool_of(kind, 3, 24, seed=8)
    refined: dict[str, list[list[int]]] = {}
    alternatives: dict[str, list[list[list[int]]]] = {}
    for path in SEARCH_PATHS:
        with search_path(path):
            refined[path] = [select(pool, query, 6).indices for query in queries]
            alternatives[path] = [
                [sorted(subset.indices) for subset in select(pool, q, 6, num_subsets=3).subsets]
                for q in queries
            ]
    assert refined["direct"] == refined["whole pool"] == refined["threshold set"]
    assert alternatives["direct"] == alternatives["whole pool"] == alternatives["threshold set"]
