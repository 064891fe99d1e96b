"""The speed benchmark's check against the naive greedy tells a float32 tie from a real
difference (bench/speed.py's ``divergence_gap``, bench/report.py's last column)."""

from __future__ import annotations

import numpy as np

from bench import report, speed


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _step_score(pool: np.ndarray, query: np.ndarray, prefix: list[int], candidate: int) -> float:
    """The greedy's step score written out as the MMD^2 of prefix + candidate minus the
    terms every candidate shares: ``mean K(S,S) - 2 mean k(S, q)`` over S = prefix + c."""
    rows = pool.astype(np.float64)[[*prefix, candidate]]
    gram = np.exp((rows @ rows.T - 1.0) / 0.2)
    affinity = np.exp((rows @ query.astype(np.float64) - 1.0) / 0.2)
    return float(gram.mean() - 2 * affinity.mean())


def test_a_duplicate_pick_is_a_tie_and_a_worse_pick_is_not() -> None:
    rng = np.random.default_rng(3)
    pool = _unit(rng.normal(size=(40, 16)))
    query = _unit(rng.normal(size=(1, 16)))[0]
    naive = speed.naive_numpy_greedy(pool, query, 4, 0.2)
    copy = next(row for row in range(40) if row not in naive)
    pool[copy] = pool[naive[1]]  # an exact duplicate of the second pick
    naive = speed.naive_numpy_greedy(pool, query, 4, 0.2)
    first = naive.index(copy) if copy in naive else 1
    original = [row for row in range(40) if np.array_equal(pool[row], pool[copy]) and row != copy]
    twin = list(naive)
    twin[first] = original[0] if naive[first] == copy else copy
    assert speed.divergence_gap(pool, query, twin, naive, 0.2) < 1e-12

    worst = int(np.argmin(pool @ query))  # the least affine candidate, never a greedy pick
    assert worst not in naive
    apart = [naive[0], worst, *naive[2:]]
    gap = speed.divergence_gap(pool, query, apart, naive, 0.2)
    expected = abs(
        _step_score(pool, query, naive[:1], worst) - _step_score(pool, query, naive[:1], naive[1])
    )
    # The step score is MMD^2 over S = prefix + c less what every c shares; the reference's
    # diagonal is k(c, c) of float32 rows in float64 (1 to about 1e-7), the greedy's is 1.
    assert gap > speed.FLOAT32_TIE
    np.testing.assert_allclose(gap, expected, rtol=1e-5)


def test_the_report_names_ties_and_real_differences() -> None:
    row = {"naive_agrees_with_exact": True}
    assert report._agreement(row) == "yes"
    row = {
        "naive_agrees_with_exact": False,
        "naive_checked": 8,
        "naive_agreeing": 7,
        "naive_float32_ties": 1,
        "naive_max_divergence_gap": 1.1e-7,
    }
    assert report._agreement(row) == "7 of 8; all float32 ties (gap up to 1.1e-07)"
    row["naive_float32_ties"] = 0
    row["naive_max_divergence_gap"] = 3e-3
    assert "1 NOT" in report._agreement(row)
    assert report._agreement({"naive_agrees_with_exact": False}) == "NO"
