"""bench/icl_peers.py: the down-weighted greedy at its ends, the AUC, the reliability bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.icl_peers import auc, reliability, set_mmd, weighted_greedy
from selector import select


def unit_rows(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_weight_one_is_the_mmd_greedy_and_weight_zero_is_knn(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    pool, query = unit_rows(rng, 40), unit_rows(rng, 1)[0]
    greedy = select(pool.astype(np.float32), query.astype(np.float32), k, tau=0.2, refine=False)
    assert weighted_greedy(pool, query, k, 0.2, 1.0) == list(greedy.indices)
    nearest = list(np.argsort(-(pool @ query), kind="stable")[:k])
    assert weighted_greedy(pool, query, k, 0.2, 0.0) == nearest


def test_set_mmd_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    pool, query = unit_rows(rng, 10), unit_rows(rng, 1)[0]
    chosen = [1, 4, 7]
    kernel = lambda a, b: np.exp((a @ b - 1) / 0.2)  # noqa: E731
    within = np.mean([kernel(pool[i], pool[j]) for i in chosen for j in chosen])
    cross = np.mean([kernel(pool[i], query) for i in chosen])
    assert set_mmd(pool, chosen, query) == pytest.approx(np.sqrt(within - 2 * cross + 1))
    assert set_mmd(pool, [0], pool[0]) == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_is_the_share_of_ordered_pairs(pairs: list[tuple[int, bool]]) -> None:
    scores = [float(s) for s, _ in pairs]
    positive = [p for _, p in pairs]
    value = auc(scores, positive)
    if all(positive) or not any(positive):
        assert value is None
        return
    wins = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for a, pa in zip(scores, positive, strict=True)
        for b, pb in zip(scores, positive, strict=True)
        if pa and not pb
    ]
    assert value == pytest.approx(np.mean(wins))


def test_reliability_bins_cover_the_set_lowest_first() -> None:
    scores = [0.5, 0.1, 0.9, 0.3, 0.7]
    correct = [True, True, False, True, False]
    bins = reliability(scores, correct, bins=5)
    assert [b["n"] for b in bins] == [1] * 5
    assert [b["accuracy"] for b in bins] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert bins[0]["mmd_low"] == 0.1 and bins[-1]["mmd_high"] == 0.9
