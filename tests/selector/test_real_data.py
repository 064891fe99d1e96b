"""On real tweets with the bundled model, greedy MMD beats knn and random in MMD^2."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import split_tweets
from selector import Pool, SentenceTransformerEmbedder, select_batch


@pytest.mark.slow
def test_greedy_mmd_beats_knn_and_random_on_2000_tweets() -> None:
    pool_tweets, held_out = split_tweets(2000, 50, seed=0)
    embedder = SentenceTransformerEmbedder()
    pool = Pool.from_arrays(embedder.embed([t.text for t in pool_tweets]), normalized=True)
    queries = embedder.embed([t.text for t in held_out])
    means = {
        method: float(np.mean([r.mmd2 for r in select_batch(pool, queries, 8, method=method)]))
        for method in ("mmd", "knn", "random", "mmr")
    }
    assert means["mmd"] < means["knn"]
    assert means["mmd"] < means["random"]
    assert means["mmd"] < means["mmr"]
