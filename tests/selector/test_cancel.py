"""``should_stop``: the search checks it between steps and stops with SelectionCancelled."""

from __future__ import annotations

import numpy as np
import pytest

import selector
from selector.cancel import checkpoint, stop_when


def _pool(n: int = 500, d: int = 16) -> np.ndarray:
    vectors = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class Counting:
    """A ``should_stop`` that answers true from its ``after``-th call on."""

    def __init__(self, after: int | None = None) -> None:
        self.after, self.calls = after, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.after is not None and self.calls >= self.after


@pytest.mark.parametrize("num_subsets", [1, 3])
def test_a_check_that_never_stops_changes_nothing(num_subsets: int) -> None:
    pool = _pool()
    check = Counting()
    plain = selector.select(pool, pool[0], 12, num_subsets=num_subsets)
    watched = selector.select(pool, pool[0], 12, num_subsets=num_subsets, should_stop=check)
    assert watched.indices == plain.indices
    assert watched.mmd2 == plain.mmd2
    assert check.calls >= 12  # at least once per greedy (or beam) step


def test_stops_at_the_step_after_the_check_turns_true() -> None:
    pool = _pool()
    check = Counting(after=3)
    with pytest.raises(selector.SelectionCancelled):
        selector.select(pool, pool[0], 40, should_stop=check)
    assert check.calls == 3  # stopped at once, not after the remaining 37 steps


def test_batches_and_beams_stop_too() -> None:
    pool = _pool()
    with pytest.raises(selector.SelectionCancelled):
        selector.select_batch(pool, pool[:8], 10, should_stop=lambda: True)
    with pytest.raises(selector.SelectionCancelled):
        selector.select(pool, pool[0], 10, num_subsets=4, should_stop=Counting(after=2))


def test_the_check_belongs_to_its_block_and_thread() -> None:
    checkpoint()  # outside any selection: nothing to check
    with stop_when(lambda: True), pytest.raises(selector.SelectionCancelled):
        checkpoint()
    checkpoint()  # the block restored the previous (no) check
    pool = _pool()
    with stop_when(lambda: True):  # a selection's own (absent) check replaces it inside
        assert len(selector.select(pool, pool[0], 5).indices) == 5
