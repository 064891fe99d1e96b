"""The faiss prefilter: approximate regions cost (almost) no MMD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selector import Pool, PoolIndex, PrefilterConfig, select, select_batch
from selector.report import top_positions
from tests.selector.reference import (
    Outputs,
    clustered_pool,
    estimated_outputs,
    naive_mmd2,
    one_hot,
    unit_rows,
)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_prefilter_on_50k_pool_is_within_one_percent_of_exact(kind: str) -> None:
    vectors = clustered_pool(50_000, 32, 0)
    queries = unit_rows(np.random.default_rng(1).standard_normal((20, 32)) + vectors[:20])
    config = PrefilterConfig(kind=kind, approximate_above=10_000)
    index = PoolIndex.build(vectors, config)
    assert index.kind == kind
    indexed = Pool.from_arrays(vectors, index=index, normalized=True)
    exact = select_batch(Pool.from_arrays(vectors, normalized=True), queries, 8)
    approximate = select_batch(indexed, queries, 8)
    assert all(result.prefiltered for result in approximate)
    assert not any(result.prefiltered for result in exact)
    exact_mean = np.mean([result.mmd2 for result in exact])
    approximate_mean = np.mean([result.mmd2 for result in approximate])
    assert approximate_mean <= exact_mean * 1.01
    # A weighted target set goes through the union of the index's answers.
    target = queries[:5]
    assert select(indexed, target, 8).mmd2 <= select(vectors, target, 8).mmd2 * 1.01


def test_small_pools_get_an_exact_flat_index_and_it_round_trips(tmp_path) -> None:
    vectors = clustered_pool(500, 16, 2)
    index = PoolIndex.build(vectors)
    assert index.kind == "flat" and index.size == 500
    index.save(tmp_path / "pool.faiss")
    loaded = PoolIndex.load(tmp_path / "pool.faiss")
    assert loaded.kind == "flat"
    np.testing.assert_array_equal(loaded.search(vectors[:3], 5), index.search(vectors[:3], 5))
    pool = Pool.from_arrays(vectors, index=loaded)
    result = select(pool, vectors[7], 4)
    assert result.prefiltered and 7 in result.indices


@pytest.mark.parametrize("labelled", [False, True])
def test_the_prefilter_paths_knn_baseline_is_prefiltered_knn_and_scans_no_pool(
    labelled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the prefilter path the knn baseline is what ``method="knn"`` with the prefilter
    chooses (the index's candidates ranked by input affinity), measured in the call's kernel,
    and no pass over the whole pool is made for it."""
    vectors = clustered_pool(20_000, 16, 4)
    labels = np.arange(20_000) % 3 if labelled else None
    index = PoolIndex.build(vectors, PrefilterConfig(approximate_above=1_000))
    pool = Pool.from_arrays(vectors, index=index, normalized=True, labels=labels)
    query = unit_rows(vectors[11:12] + 0.3 * np.random.default_rng(5).standard_normal(16))[0]

    def no_scan(self: Pool, queries: object) -> None:
        raise AssertionError("the whole pool was scanned")

    monkeypatch.setattr(Pool, "inner_products", no_scan)
    result = select(pool, query, 8, compare_baselines=True)
    knn = select(pool, query, 8, method="knn")
    assert result.prefiltered and knn.prefiltered
    monkeypatch.undo()
    exact = np.argsort(-(vectors @ query), kind="stable")[:8]
    assert sorted(knn.indices) == sorted(exact.tolist())  # the index finds the true top 8 here
    chosen = np.array(knn.indices)
    outputs = None
    if labels is not None:
        estimate = estimated_outputs(vectors, query[None], one_hot(labels, 3), "cosine")
        outputs = Outputs(
            estimate.candidate[chosen], estimate.target, estimate.kernel, estimate.tau
        )
    reference = naive_mmd2("softmax", 0.2, vectors[chosen], query[None], outputs=outputs)
    assert result.baselines["knn"] == pytest.approx(max(reference, 0.0), abs=1e-5)
    assert result.mmd2 <= result.baselines["knn"] + 1e-9


@given(
    st.lists(st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0]), min_size=1, max_size=60),
    st.integers(1, 70),
)
def test_top_k_is_the_stable_sorts_prefix(values: list[float], k: int) -> None:
    array = np.array(values)
    expected = np.argsort(-array, kind="stable")[:k]
    np.testing.assert_array_equal(top_positions(array, k), expected)


@pytest.mark.parametrize("labelled", [False, True])
def test_a_prefiltered_batch_is_the_single_calls(
    labelled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU each problem of a prefiltered batch is solved alone on its own candidates
    (the single call's computation), and the batched torch loop, still the GPU's path, gives
    the same subsets."""
    import selector.solve as solve

    vectors = clustered_pool(20_000, 16, 6)
    labels = np.arange(20_000) % 3 if labelled else None
    index = PoolIndex.build(vectors, PrefilterConfig(approximate_above=1_000))
    pool = Pool.from_arrays(vectors, index=index, normalized=True, labels=labels)
    queries = unit_rows(vectors[:6] + 0.3 * np.random.default_rng(7).standard_normal((6, 16)))
    solved_alone = []
    original = solve._prefiltered_one_by_one

    def counting(region, *args):  # type: ignore[no-untyped-def]
        solved_alone.append(region.batch_size)
        return original(region, *args)

    monkeypatch.setattr(solve, "_prefiltered_one_by_one", counting)
    batch = select_batch(pool, queries, 8, compare_baselines=True)
    assert solved_alone == [len(queries)]
    monkeypatch.setattr(solve, "BATCH_ONE_BY_ONE_ABOVE", 10**9)  # the batched torch loop
    rounds = select_batch(pool, queries, 8, compare_baselines=True)
    for query, result, together in zip(queries, batch, rounds, strict=True):
        single = select(pool, query, 8, compare_baselines=True)
        assert result.prefiltered and single.prefiltered
        assert result.indices == single.indices == together.indices
        assert result.mmd2 == pytest.approx(single.mmd2, abs=1e-9)
        assert result.baselines == pytest.approx(single.baselines, abs=1e-9)
