"""Per-pool calibration against a naive reference (one plain selection per held-out row, the
scores counted by hand), its properties, and bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selector import Calibration, Pool, calibrate, carve_validation, select
from selector.errors import InvalidInputError
from tests.selector.reference import unit_rows

LABELS = ("negative", "neutral", "positive")


def labelled_pool(seed: int, n: int = 60, d: int = 8) -> tuple[np.ndarray, list[str]]:
    """``n`` unit vectors around one centre per label, with their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(LABELS), d))
    label_ids = rng.integers(0, len(LABELS), n)
    vectors = unit_rows(centres[label_ids] + 1.2 * rng.standard_normal((n, d)))
    return vectors, [LABELS[i] for i in label_ids]


def chosen_by_hand(
    vectors: np.ndarray,
    labels: list[str] | None,
    outputs: np.ndarray | None,
    held_out: list[int],
    k: int,
    **options: Any,
) -> list[list[int]]:
    """One plain :func:`select` per held-out row over the pool without the held-out rows."""
    rest = [row for row in range(len(vectors)) if row not in held_out]
    chosen = []
    for row in held_out:
        result = select(
            vectors[rest],
            vectors[row],
            k,
            labels=None if labels is None else [labels[i] for i in rest],
            output_embeddings=None if outputs is None else outputs[rest],
            **options,
        )
        chosen.append([rest[i] for i in result.indices])
    return chosen


def purity_by_hand(labels: list[str], held_out: list[int], chosen: list[list[int]]) -> float:
    hits = total = 0
    for row, demonstrations in zip(held_out, chosen, strict=True):
        for demonstration in demonstrations:
            hits += labels[demonstration] == labels[row]
            total += 1
    return hits / total


def test_label_purity_matches_a_selection_per_held_out_row() -> None:
    vectors, labels = labelled_pool(0)
    pool = Pool.from_arrays(vectors, labels=labels)
    taus = (0.05, 0.2, 0.5)
    calibration = calibrate(pool, 4, taus=taus, validation_size=12, seed=3)
    held_out = calibration.validation_rows
    assert held_out == carve_validation(60, 12, 4, 3).tolist()
    assert calibration.validation_size == 12 and calibration.scorer == "label_purity"
    for tau in taus:
        chosen = chosen_by_hand(vectors, labels, None, held_out, 4, tau=tau)
        assert calibration.scores[tau] == pytest.approx(purity_by_hand(labels, held_out, chosen))
    knn = chosen_by_hand(vectors, labels, None, held_out, 4, method="knn")
    assert calibration.knn_score == pytest.approx(purity_by_hand(labels, held_out, knn))
    best = max(calibration.scores.values())
    assert calibration.tau == max(tau for tau in taus if calibration.scores[tau] == best)
    assert calibration.beats_knn == (best > calibration.knn_score)


def test_output_similarity_matches_a_selection_per_held_out_row() -> None:
    vectors, labels = labelled_pool(1, n=40)
    rng = np.random.default_rng(1)
    outputs = unit_rows(np.eye(3)[[LABELS.index(label) for label in labels]] + rng.random((40, 3)))
    pool = Pool.from_arrays(vectors, output_embeddings=outputs)
    calibration = calibrate(pool, 3, taus=[0.1, 0.3], validation_rows=[0, 5, 7, 30])
    assert calibration.scorer == "output_similarity" and calibration.validation_size == 4
    for tau in (0.1, 0.3):
        chosen = chosen_by_hand(vectors, None, outputs, [0, 5, 7, 30], 3, tau=tau)
        by_hand = np.mean(
            [
                outputs[c] @ outputs[row]
                for row, row_chosen in zip([0, 5, 7, 30], chosen, strict=True)
                for c in row_chosen
            ]
        )
        assert calibration.scores[tau] == pytest.approx(by_hand, abs=1e-6)


def test_a_given_scorer_replaces_the_default_and_sees_pool_rows() -> None:
    vectors, labels = labelled_pool(2, n=30)
    pool = Pool.from_arrays(vectors, labels=labels)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def lm_accuracy(rows: np.ndarray, chosen: np.ndarray) -> float:
        seen.append((rows.copy(), chosen.copy()))
        return float(len(seen))  # later settings score higher: the largest tau wins

    calibration = calibrate(pool, 2, taus=(0.3, 0.1), validation_rows=[4, 2], scorer=lm_accuracy)
    assert calibration.scorer == "lm_accuracy" and calibration.validation_rows == [2, 4]
    assert len(seen) == 3 and all(rows.tolist() == [2, 4] for rows, _ in seen)
    assert all(chosen.shape == (2, 2) for _, chosen in seen)
    assert calibration.scores == {0.1: 1.0, 0.3: 2.0} and calibration.knn_score == 3.0
    assert calibration.tau == 0.3 and not calibration.beats_knn
    knn = chosen_by_hand(vectors, labels, None, [2, 4], 2, method="knn")
    assert seen[-1][1].tolist() == knn


def test_ties_go_to_the_larger_tau() -> None:
    vectors, labels = labelled_pool(3, n=20)
    pool = Pool.from_arrays(vectors, labels=labels)

    def constant(rows: np.ndarray, chosen: np.ndarray) -> float:
        return 0.5

    calibration = calibrate(pool, 2, taus=(0.5, 0.05, 0.2), validation_size=3, scorer=constant)
    assert calibration.tau == 0.5 and list(calibration.scores) == [0.05, 0.2, 0.5]
    assert calibration.beats_knn is False


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(12, 40),
    k=st.integers(1, 4),
    validation_size=st.integers(1, 8),
    taus=st.lists(st.sampled_from([0.05, 0.1, 0.2, 0.5, 1.0]), min_size=1, max_size=4),
)
def test_properties(seed: int, n: int, k: int, validation_size: int, taus: list[float]) -> None:
    vectors, labels = labelled_pool(seed, n=n)
    pool = Pool.from_arrays(vectors, labels=labels)
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def recorded(rows: np.ndarray, chosen: np.ndarray) -> float:
        calls.append((rows, chosen))
        return float(chosen.sum() % 3)  # arbitrary, with ties

    first = calibrate(pool, k, taus=taus, validation_size=validation_size, seed=seed)
    again = calibrate(pool, k, taus=taus, validation_size=validation_size, seed=seed)
    assert first == again
    held_out = set(first.validation_rows)
    assert len(held_out) == validation_size and held_out <= set(range(n))
    assert sorted(first.scores) == sorted(set(taus))
    best = max(first.scores.values())
    assert first.tau == max(tau for tau, score in first.scores.items() if score == best)
    assert first.beats_knn == (best > first.knn_score)
    assert all(0.0 <= score <= 1.0 for score in [*first.scores.values(), first.knn_score])

    custom = calibrate(
        pool, k, taus=taus, validation_size=validation_size, seed=seed, scorer=recorded
    )
    assert custom.validation_rows == first.validation_rows
    for rows, chosen in calls:
        assert rows.tolist() == first.validation_rows and chosen.shape == (validation_size, k)
        assert not held_out & set(chosen.ravel().tolist()), "a held-out row was chosen"
        assert all(len(set(row)) == k for row in chosen.tolist())
    best = max(custom.scores.values())
    assert custom.tau == max(tau for tau, score in custom.scores.items() if score == best)


def test_the_seed_draws_the_split() -> None:
    splits = {tuple(carve_validation(100, 10, 8, seed)) for seed in range(5)}
    assert len(splits) == 5
    assert carve_validation(100, 10, 8, 7).tolist() == carve_validation(100, 10, 8, 7).tolist()


def _calibrate(**overrides: object) -> Calibration:
    vectors, labels = labelled_pool(4, n=20)
    arguments: dict[str, object] = {
        "pool": Pool.from_arrays(vectors, labels=labels),
        "k": 4,
        "validation_size": 5,
    }
    arguments.update(overrides)
    return calibrate(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pool": Pool.from_arrays(labelled_pool(4, n=20)[0])}, "neither"),
        ({"k": 0}, "k must be at least 1"),
        ({"k": 20}, "k=20 is too large"),
        ({"taus": ()}, "at least one"),
        ({"taus": (0.1, 0.0)}, "positive"),
        ({"taus": (float("nan"),)}, "positive"),
        ({"taus": ("wide",)}, "numbers"),
        ({"validation_size": 0}, "at least 1"),
        ({"validation_size": 17}, "hold out at most 16"),
        ({"validation_rows": [1, 1]}, "distinct"),
        ({"validation_rows": [20]}, r"\[0, 20\)"),
        ({"validation_rows": []}, "at least one row"),
        ({"validation_rows": list(range(17))}, "fewer than k=4"),
        ({"kernel": "cosine"}, "no bandwidth"),
    ],
)
def test_bad_input(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _calibrate(**overrides)
