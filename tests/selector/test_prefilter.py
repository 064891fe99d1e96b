"""The faiss prefilter: approximate regions cost (almost) no MMD."""

from __future__ import annotations

import numpy as np
import pytest

from selector import Pool, PoolIndex, PrefilterConfig, select, select_batch
from tests.selector.reference import clustered_pool, unit_rows


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
