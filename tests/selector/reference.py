"""Naive numpy references (double loops, float64) for the library's numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def unit_rows(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def clustered_pool(
    n: int, dimension: int, seed: int, centres: int = 50, spread: float = 0.6
) -> np.ndarray:
    """``(n, dimension)`` float32 unit rows drawn around ``centres`` random centres."""
    rng = np.random.default_rng(seed)
    centre_rows = rng.standard_normal((centres, dimension))
    points = centre_rows[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, dimension))
    return unit_rows(points).astype(np.float32)


def kernel_value(name: str, tau: float, x: np.ndarray, y: np.ndarray) -> float:
    if name == "softmax":
        return math.exp((float(x @ y) - 1.0) / tau)
    if name == "cosine":
        return float(x @ y)
    squared = float(((x - y) ** 2).sum())
    if name == "rbf":
        return math.exp(-squared / (2.0 * tau))
    return math.exp(-math.sqrt(squared) / tau)


def naive_mmd2(
    name: str,
    tau: float,
    chosen: np.ndarray,
    target: np.ndarray,
    weights: Sequence[float] | None = None,
    chosen_labels: Sequence[int] | None = None,
    target_label_distribution: np.ndarray | None = None,
) -> float:
    """Double-loop MMD^2; with labels, the product kernel k_x * [y == y'] against a target
    whose label distribution per point is given (rows of ``target_label_distribution``)."""
    k, m = len(chosen), len(target)
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    joint = chosen_labels is not None
    if joint:
        assert target_label_distribution is not None
        p = np.broadcast_to(
            np.asarray(target_label_distribution, dtype=np.float64),
            (m, len(np.atleast_2d(target_label_distribution)[0])),
        )
    within = 0.0
    for a in range(k):
        for b in range(k):
            value = kernel_value(name, tau, chosen[a], chosen[b])
            if joint:
                value *= float(chosen_labels[a] == chosen_labels[b])
            within += value
    cross = 0.0
    for a in range(k):
        for j in range(m):
            value = kernel_value(name, tau, chosen[a], target[j])
            if joint:
                value *= p[j][chosen_labels[a]]
            cross += w[j] * value
    const = 0.0
    for j in range(m):
        for other in range(m):
            value = kernel_value(name, tau, target[j], target[other])
            if joint:
                value *= float(p[j] @ p[other])
            const += w[j] * w[other] * value
    return within / k**2 - 2.0 * cross / k + const
