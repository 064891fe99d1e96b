"""The CPU fast path: every greedy-MMD problem under static masks (one query, a target set or
each row of a batch) is solved on host arrays by speculation and verification
(selector/regions.py), its refinement in numpy (selector/solve.py ``_host_refined``). It gives
the naive greedy's subset for every kernel, it is the path taken (no batched growth rounds, no
torch top-k, a threshold verification set above ``SMALL_POOL``), and its refinement is the
batched torch refinement's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import selector.regions as regions
import selector.solve as solve
from selector import Pool, select, select_batch
from selector.constraints import compile_constraints
from selector.kernels import Kernel
from selector.search import CandidateRegion
from tests.selector.paths import SEARCH_PATHS, search_path
from tests.selector.reference import naive_greedy, naive_problem, unit_rows

KERNELS = ["softmax", "rbf", "laplace", "cosine"]
TAU = {"softmax": 0.2, "rbf": 0.3, "laplace": 0.6, "cosine": 1.0}
TIE_FREE = 1e-6  # smallest step gap of the naive greedy: above the float32 rounding of a step
# Laplace's exp(-sqrt(2 - 2 <x, y>) / tau) is steep near <x, y> = 1: on near-duplicates one
# float32 rounding of an inner product (6e-8) moves a step's value by about 1e-5.
TIE_FREE_BY_KERNEL = {"laplace": 1e-4}


def drawn_pool(seed: int, n: int, d: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(pool (n, d), 4 queries)`` of one kind: isotropic, clustered or near-duplicates."""
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        points = rng.standard_normal((n + 4, d))
    else:
        spread = 0.5 if kind == "clustered" else 0.02
        centres = rng.standard_normal((max(2, n // 40), d))
        points = centres[rng.integers(0, len(centres), n + 4)]
        points = points + spread * rng.standard_normal((n + 4, d))
    rows = unit_rows(points).astype(np.float32)
    return rows[:n], rows[n:]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(12, 700),
    d=st.integers(3, 16),
    k=st.integers(1, 8),
    kernel=st.sampled_from(KERNELS),
    kind=st.sampled_from(["isotropic", "clustered", "near-duplicates"]),
    initial=st.sampled_from([None, 4, 16]),
    path=st.sampled_from(SEARCH_PATHS),
)
def test_the_host_path_is_the_naive_greedy_for_every_kernel(
    seed: int,
    n: int,
    d: int,
    k: int,
    kernel: str,
    kind: str,
    initial: int | None,
    path: str,
) -> None:
    """Small pools of every kind, every kernel (cosine with its negative redundancy bound),
    certificates that hold or fail, verification sets cut by the threshold or the whole pool:
    one query's subset is the float64 naive greedy's, as is each row of a batch."""
    k = min(k, n)
    pool, queries = drawn_pool(seed, n, d, kind)
    expected = []
    for query in queries[:2]:
        problem = naive_problem(kernel, TAU[kernel], pool, query[None])
        chosen, gap = naive_greedy(problem, k)
        # Near-ties are decided by the float32 rounding of the scan's inner products.
        assume(gap > TIE_FREE_BY_KERNEL.get(kernel, TIE_FREE))
        expected.append(chosen)
    options = {"kernel": kernel, "tau": TAU[kernel], "refine": False, "initial_region": initial}
    with search_path(path):
        single = [select(pool, query, k, **options).indices for query in queries[:2]]
        batch = [result.indices for result in select_batch(pool, queries[:2], k, **options)]
    assert single == expected
    assert batch == expected


def test_it_is_the_path_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU a single problem goes through ``exact_single``, and so does every row of a
    batch (never the batched growth rounds, at any pool size); its
    regions are built from the scan's host arrays (not
    ``TopRegions.of_index``'s batched gathers, for one query point), its top of the ranking
    comes from a numpy partition (not ``torch.topk``), and refinement is the numpy one."""
    calls = {"exact_single": 0, "of_index": 0, "host_refined": 0, "topk": 0}
    original_exact, original_of_index = regions.exact_single, regions.TopRegions.of_index
    original_refined, original_topk = solve._host_refined, torch.topk

    def counting(name, function):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapped

    def no_batched_rounds(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a CPU batch of greedy-MMD problems grew regions in batches")

    monkeypatch.setattr(solve, "exact_single", counting("exact_single", original_exact))
    monkeypatch.setattr(regions.TopRegions, "of_index", counting("of_index", original_of_index))
    monkeypatch.setattr(solve, "_host_refined", counting("host_refined", original_refined))
    monkeypatch.setattr(torch, "topk", counting("topk", original_topk))
    monkeypatch.setattr(solve, "_batched_rounds", no_batched_rounds)
    size = regions.SMALL_POOL + 4000
    pool, queries = drawn_pool(5, size, 12, "isotropic")
    prepared = Pool.from_arrays(pool, normalized=True)
    single = select(prepared, queries[0], 8, initial_region=16)
    assert calls == {"exact_single": 1, "of_index": 0, "host_refined": 1, "topk": 0}
    # The certificate failed on 16 candidates of an isotropic pool: the verification set is
    # cut by the threshold (above SMALL_POOL), neither the small region nor the pool.
    assert size > regions.SMALL_POOL
    assert 16 < single.region_size < size
    batch = select_batch(prepared, queries, 8, initial_region=16)
    assert calls["exact_single"] == 1 + len(queries) and calls["of_index"] == 0
    assert calls["host_refined"] == 1 + len(queries) and calls["topk"] == 0
    assert batch[0].indices == single.indices
    assert batch[0].mmd2 == pytest.approx(single.mmd2, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.sampled_from([12, 200, 1100]),
    k=st.integers(1, 8),
    kernel=st.sampled_from(KERNELS),
    labelled=st.booleans(),
    excluded=st.booleans(),
)
def test_host_refinement_is_the_torch_refinement(
    seed: int, size: int, k: int, kernel: str, labelled: bool, excluded: bool
) -> None:
    """``_refined`` of one problem (numpy, ``_host_refined``) and of a batch of two copies of
    it (the batched torch swaps) give the same positions, on regions small and larger than
    the swap candidates, with the joint kernel's labels and a static mask."""
    rng = np.random.default_rng(seed)
    d = 6
    vectors = torch.from_numpy(unit_rows(rng.standard_normal((size, d))).astype(np.float32))
    query = torch.from_numpy(unit_rows(rng.standard_normal((1, d))).astype(np.float32))[0]
    chosen_kernel = Kernel(kernel, TAU[kernel])
    inner = vectors @ query
    pool_index = torch.from_numpy(rng.permutation(size + 50)[:size]).long()
    labels = torch.from_numpy(rng.integers(0, 3, size)).long() if labelled else None
    region = CandidateRegion(
        pool_index=pool_index.unsqueeze(0),
        vectors=vectors.unsqueeze(0),
        affinity=chosen_kernel.from_inner(inner).unsqueeze(0),
        similarity=inner.unsqueeze(0),
        excluded_affinity=torch.tensor([-float("inf")]),
        kernel=chosen_kernel,
        output_labels=None if labels is None else labels.unsqueeze(0),
    )
    exclude = rng.choice(size + 50, 20, replace=False).tolist() if excluded else []
    from selector.constraints import Constraints

    plan = compile_constraints(
        Constraints(exclude=exclude), size + 50, k, None, None, torch.device("cpu")
    )
    allowed = plan.host_static_mask[pool_index.numpy()]
    candidates = np.flatnonzero(allowed)
    assume(len(candidates) > k)
    start = torch.from_numpy(rng.choice(candidates, k, replace=False)).long().unsqueeze(0)
    host = solve._refined(region, plan, start, k)
    batched = solve._refined(region.take(torch.tensor([0, 0])), plan, start.repeat(2, 1), k)
    assert host.tolist()[0] == batched.tolist()[0] == batched.tolist()[1]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), path=st.sampled_from(SEARCH_PATHS))
def test_the_host_path_allows_for_cosines_negative_redundancy(seed: int, k: int, path: str) -> None:
    """Pools where the cosine greedy leaves the top of the affinity at its second step (a
    candidate's redundancy with the first pick is negative): with the certificate's bound
    ``s_i >= -(j - 1)`` the host path still finds the naive greedy's picks there."""
    from tests.selector.test_exactness import opposed_pool

    pool, query, far = opposed_pool(seed)
    problem = naive_problem("cosine", 1.0, pool, query)
    expected, gap = naive_greedy(problem, k)
    assume(gap > TIE_FREE and expected[1] in far)
    with search_path(path):
        options = {"kernel": "cosine", "refine": False, "initial_region": 8}
        single = select(pool.astype(np.float32), query[0], k, **options)
    assert single.indices == expected and single.region_size > 8


def test_a_batch_solved_one_by_one_keeps_only_the_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each problem of a batch solved one by one lets go of its verification set (which may
    be the whole pool) once refined: the report sees the chosen's pool indices alone, and the
    same subsets as the single calls."""
    held: list[int] = []
    original = solve._finish

    def finishing(scorer, plan, settings, row, solved, k_min, joint):  # type: ignore[no-untyped-def]
        held.append(int(solved.pool_index.numel()))
        return original(scorer, plan, settings, row, solved, k_min, joint)

    monkeypatch.setattr(solve, "_finish", finishing)
    size = regions.SMALL_POOL + 2000
    pool, queries = drawn_pool(9, size, 8, "near-duplicates")
    prepared = Pool.from_arrays(pool, normalized=True)
    batch = select_batch(prepared, queries, 6, initial_region=8)
    assert held == [6] * len(queries)
    for query, result in zip(queries, batch, strict=True):
        single = select(prepared, query, 6, initial_region=8)
        assert result.indices == single.indices and result.region_size == single.region_size
        assert result.region_size > 8


def test_refinement_keeps_a_chosen_candidate_the_certificate_passes_from_outside() -> None:
    """A labelled pool of near-duplicates where a chosen candidate sits exactly at the edge of
    the prefix refinement would draw on (its bound tight: zero redundancy across labels); the
    refinement region keeps it. Found by a random search (seed 93, the 16th query, k = 4);
    before the fix the call failed an assertion, and over HTTP answered 500."""
    from bench.speed import near_duplicate_unit_vectors

    rng = np.random.default_rng(93)
    n, d = int(rng.integers(5000, 12000)), int(rng.choice([16, 32, 64]))
    vectors = near_duplicate_unit_vectors(n, d, 93, copies=int(rng.integers(50, 500)))
    labels = rng.integers(0, int(rng.integers(2, 6)), n)
    queries = vectors[rng.integers(0, n, 20)] + 0.05 * rng.standard_normal((20, d)).astype(
        np.float32
    )
    query = unit_rows(queries)[15]
    pool = Pool.from_arrays(vectors, labels=labels, normalized=True)
    refined = select(pool, query, 4)
    greedy = select(pool, query, 4, refine=False)
    assert len(set(refined.indices)) == 4
    assert refined.mmd2 <= greedy.mmd2 + 1e-9  # refinement never makes the subset worse


@pytest.mark.parametrize("size", [64, 1000, 3000])
def test_a_batch_over_a_small_pool_is_solved_one_by_one(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every CPU batch of greedy-MMD problems goes through ``exact_single`` row by row, small
    pools included (one by one was 1.2-3.4x faster than the batched rounds at 64 to 4,000
    candidates), and each row is the single call's subset."""
    calls = {"exact_single": 0}
    original = regions.exact_single

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["exact_single"] += 1
        return original(*args, **kwargs)

    def no_batched_rounds(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a CPU batch of greedy-MMD problems grew regions in batches")

    monkeypatch.setattr(solve, "exact_single", counting)
    monkeypatch.setattr(solve, "_batched_rounds", no_batched_rounds)
    pool, queries = drawn_pool(31, size, 6, "isotropic")
    prepared = Pool.from_arrays(pool, normalized=True)
    batch = select_batch(prepared, queries, 8, initial_region=16)
    assert calls["exact_single"] == len(queries)
    for query, result in zip(queries, batch, strict=True):
        single = select(prepared, query, 8, initial_region=16)
        assert result.indices == single.indices
        assert result.mmd2 == pytest.approx(single.mmd2, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 6_000),
    count=st.integers(1, 2_000),
    kind=st.sampled_from(["continuous", "ties", "infinities", "sorted"]),
)
def test_the_top_of_a_ranking_is_the_largest_keys_in_order(
    seed: int, n: int, count: int, kind: str
) -> None:
    """``regions._top`` (a cut from a strided sample, then a partition of the keys above it)
    gives ``count`` distinct positions whose keys are the ``count`` largest, largest first,
    for keys with many ties, pins (``inf``) and masked candidates (``-inf``), or in order."""
    rng = np.random.default_rng(seed)
    if kind == "ties":
        key = rng.integers(0, 5, n).astype(np.float32)
    else:
        key = rng.standard_normal(n).astype(np.float32)
    if kind == "infinities":
        key[rng.random(n) < 0.3] = -np.inf
        key[rng.random(n) < 0.01] = np.inf
    if kind == "sorted":
        key.sort()
    count = min(count, n)
    top = regions._top(key, count)
    assert len(top) == count == len(set(top.tolist()))
    assert np.array_equal(key[top], np.sort(key)[::-1][:count])


def test_the_top_falls_back_to_every_key_when_the_sample_cuts_too_high() -> None:
    """Keys whose strided sample holds only large values: fewer than ``count`` keys reach
    the sample's cut, and the top comes from partitioning every key."""
    key = np.zeros(1_600, dtype=np.float32)
    key[:: regions.TOP_SAMPLE_STRIDE] = 0.5  # the sample: 100 keys of 0.5
    key[1::32] = 1.0  # 50 larger keys the sample never sees
    key[3::32] = np.linspace(0.1, 0.4, 50, dtype=np.float32)
    assert (key >= regions._sampled_cut(key, 300)).sum() < 300
    top = regions._top(key, 300)
    assert np.array_equal(key[top], np.sort(key)[::-1][:300])
