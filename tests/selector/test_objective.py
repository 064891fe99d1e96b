"""The numpy host loops and the batched torch loops evaluate the same objective functions
(selector/objective.py): a change to one of them changes both paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import selector.objective as objective
import selector.solve as solve
from selector import Pool, select, select_batch
from tests.selector.reference import unit_rows


def data(seed: int = 21) -> tuple[Pool, np.ndarray]:
    rng = np.random.default_rng(seed)
    return Pool.from_arrays(unit_rows(rng.standard_normal((400, 8)))), unit_rows(
        rng.standard_normal((3, 8))
    )


def knn_order(pool: Pool, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(pool.host_vectors @ query))[:k].tolist()


def test_a_changed_step_score_changes_the_host_and_the_batched_greedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool, queries = data()
    # Unchanged, the greedy trades relevance against redundancy: not the knn order.
    assert select(pool, queries[0], 6, refine=False).indices != knn_order(pool, queries[0], 6)
    calls: dict[str, int] = {"numpy": 0, "torch": 0}
    original = objective.step_score

    def relevance_only(redundancy, affinity, offset, step):
        calls["torch" if isinstance(redundancy, torch.Tensor) else "numpy"] += 1
        return original(redundancy * 0.0, affinity, offset, step)  # redundancy ignored

    monkeypatch.setattr(objective, "step_score", relevance_only)
    single = select(pool, queries[0], 6, refine=False)  # one problem: the numpy host loop
    assert calls["numpy"] > 0 and calls["torch"] == 0
    # A batch in the batched growth rounds: the torch loop (the GPU's path; a CPU batch is
    # solved one problem at a time unless this bound says otherwise).
    monkeypatch.setattr(solve, "BATCH_ONE_BY_ONE_ABOVE", 10**9)
    batch = select_batch(pool, queries, 6, refine=False)
    assert calls["torch"] > 0
    # Without redundancy the objective ranks by affinity alone: both give the knn order.
    assert single.indices == knn_order(pool, queries[0], 6)
    for row, result in enumerate(batch):
        assert result.indices == knn_order(pool, queries[row], 6)


def test_a_changed_swap_delta_changes_both_refinements(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, queries = data(25)  # refinement swaps for the last query
    greedy = [select(pool, query, 6, refine=False).indices for query in queries]
    # Unchanged, refinement swaps on this data, alone and in a batch.
    assert select(pool, queries[2], 6).indices != greedy[2]
    assert [r.indices for r in select_batch(pool, queries, 6)] != greedy
    calls: dict[str, int] = {"numpy": 0, "torch": 0}

    def never_better(unary, chosen_unary, pair, size, diagonal):
        calls["torch" if isinstance(unary, torch.Tensor) else "numpy"] += 1
        return pair * 0.0 + 1.0  # no swap lowers the objective

    monkeypatch.setattr(objective, "swap_change", never_better)
    single = select(pool, queries[2], 6)
    monkeypatch.setattr(solve, "BATCH_ONE_BY_ONE_ABOVE", 10**9)  # the batched torch loop
    batch = select_batch(pool, queries, 6)
    assert calls["numpy"] > 0 and calls["torch"] > 0
    assert single.indices == greedy[2]
    assert [result.indices for result in batch] == greedy
