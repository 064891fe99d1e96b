"""Naive numpy references (float64) for the library's numbers.

The joint (input, output) kernel of docs/design.md is ``k_x(x, x') * k_y(o, o')``. Here every
output is a row: a label is its one-hot row under the cosine kernel (so ``k_y`` is label
equality), a free-text output its embedding under the softmax kernel. A target point's output
is unknown and enters as a mixture of output rows (a given label distribution over the one-hot
rows, or the estimate: its nearest candidates' outputs, weighted as :func:`estimated_outputs`
says).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def kernel_matrix(name: str, tau: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`kernel_value` of every pair, ``x: (n, d), y: (m, d) -> (n, m)``, the distances
    taken from the differences (not from inner products, as the library does)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if name == "softmax":
        return np.exp((x @ y.T - 1.0) / tau)
    if name == "cosine":
        return x @ y.T
    step = max(1, 2**21 // (len(y) * x.shape[1]))
    squared = np.concatenate(
        [((x[s : s + step, None, :] - y[None]) ** 2).sum(-1) for s in range(0, len(x), step)]
    )
    if name == "rbf":
        return np.exp(-squared / (2.0 * tau))
    return np.exp(-np.sqrt(squared) / tau)


Mixture = tuple[np.ndarray, np.ndarray]  # output rows (N, d_o) and their weights (N,)


@dataclass(frozen=True)
class Outputs:
    """The output side of a joint problem: ``candidate: (n, d_o)`` one output row per
    candidate, ``target`` one :data:`Mixture` per target point, compared by ``kernel``."""

    candidate: np.ndarray
    target: Sequence[Mixture]
    kernel: str
    tau: float = 1.0


def one_hot(labels: Sequence[int] | np.ndarray, count: int) -> np.ndarray:
    return np.eye(count)[np.asarray(labels, dtype=np.int64)]


def label_outputs(labels: Sequence[int], distribution: np.ndarray) -> Outputs:
    """Labels ``0 .. C-1`` of the candidates and a target label distribution ``(m, C)``."""
    distribution = np.atleast_2d(np.asarray(distribution, dtype=np.float64))
    count = distribution.shape[1]
    rows = np.eye(count)
    return Outputs(one_hot(labels, count), [(rows, p) for p in distribution], "cosine")


def estimated_outputs(
    pool: np.ndarray,
    target: np.ndarray,
    candidate_outputs: np.ndarray,
    kernel: str,
    tau: float = 1.0,
    neighbours: int = 16,
    label_tau: float = 0.05,
) -> Outputs:
    """The library's estimate of each target point's output (docs/design.md): its
    ``neighbours`` most similar candidates' outputs, weighted by
    ``softmax((<x, q> - 1) / label_tau)`` over those neighbours."""
    mixtures = []
    for point in np.atleast_2d(target):
        inner = np.asarray(pool, dtype=np.float64) @ point
        nearest = np.argsort(-inner, kind="stable")[:neighbours]
        weight = np.exp((inner[nearest] - 1.0) / label_tau)
        mixtures.append((candidate_outputs[nearest], weight / weight.sum()))
    return Outputs(candidate_outputs, mixtures, kernel, tau)


def naive_mmd2(
    name: str,
    tau: float,
    chosen: np.ndarray,
    target: np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    chosen_labels: Sequence[int] | None = None,
    target_label_distribution: np.ndarray | None = None,
    outputs: Outputs | None = None,
) -> float:
    """Double-loop MMD^2 of the uniformly weighted ``chosen`` to the weighted ``target``; with
    labels (``chosen_labels`` and a distribution per target point) or ``outputs`` (whose
    ``candidate`` rows are the chosen ones'), under the joint kernel ``k_x * k_y``."""
    k, m = len(chosen), len(target)
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    if chosen_labels is not None:
        assert target_label_distribution is not None
        distribution = np.broadcast_to(
            np.atleast_2d(np.asarray(target_label_distribution, dtype=np.float64)),
            (m, np.atleast_2d(target_label_distribution).shape[1]),
        )
        outputs = label_outputs(chosen_labels, distribution)

    def output_kernel(a: np.ndarray, b: np.ndarray) -> float:
        assert outputs is not None
        return kernel_value(outputs.kernel, outputs.tau, a, b)

    def expected(a: np.ndarray, mixture: Mixture) -> float:
        return sum(p * output_kernel(a, row) for row, p in zip(*mixture, strict=True))

    def expected_between(left: Mixture, right: Mixture) -> float:
        return sum(q * expected(row, right) for row, q in zip(*left, strict=True))

    within = 0.0
    for a in range(k):
        for b in range(k):
            value = kernel_value(name, tau, chosen[a], chosen[b])
            if outputs is not None:
                value *= output_kernel(outputs.candidate[a], outputs.candidate[b])
            within += value
    cross = 0.0
    for a in range(k):
        for j in range(m):
            value = kernel_value(name, tau, chosen[a], target[j])
            if outputs is not None:
                value *= expected(outputs.candidate[a], outputs.target[j])
            cross += w[j] * value
    const = 0.0
    for j in range(m):
        for other in range(m):
            value = kernel_value(name, tau, target[j], target[other])
            if outputs is not None:
                value *= expected_between(outputs.target[j], outputs.target[other])
            const += w[j] * w[other] * value
    return within / k**2 - 2.0 * cross / k + const


@dataclass(frozen=True)
class NaiveProblem:
    """One selection problem over a pool of n candidates, in float64: the (joint) kernel
    ``gram: (n, n)`` of the candidates, their target affinity ``affinity: (n,)``
    ``sum_j w_j E k(c_i, q_j)``, and the target's ``constant``
    ``sum_{j,l} w_j w_l E k(q_j, q_l)``."""

    gram: np.ndarray
    affinity: np.ndarray
    constant: float

    def mmd2(self, subset: Sequence[int]) -> float:
        chosen = np.asarray(subset, dtype=np.int64)
        size = len(chosen)
        within = self.gram[np.ix_(chosen, chosen)].sum()
        return within / size**2 - 2.0 * self.affinity[chosen].sum() / size + self.constant


def naive_problem(
    name: str,
    tau: float,
    pool: np.ndarray,
    target: np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    outputs: Outputs | None = None,
    gram: np.ndarray | None = None,
) -> NaiveProblem:
    """The :class:`NaiveProblem` of ``pool: (n, d)`` and ``target: (m, d)`` (uniform weights if
    None) under kernel ``name``, joint with ``outputs`` when given; ``gram`` may give the
    candidates' kernel matrix, which the problems of one pool share (another problem's)."""
    target = np.atleast_2d(np.asarray(target, dtype=np.float64))
    m = len(target)
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    if gram is None:
        gram = kernel_matrix(name, tau, pool, pool)
        if outputs is not None:
            candidate = outputs.candidate
            gram = gram * kernel_matrix(outputs.kernel, outputs.tau, candidate, candidate)
    cross = kernel_matrix(name, tau, pool, target)  # (n, m)
    target_gram = kernel_matrix(name, tau, target, target)
    if outputs is not None:
        expected = np.stack(
            [
                kernel_matrix(outputs.kernel, outputs.tau, outputs.candidate, rows) @ p
                for rows, p in outputs.target
            ],
            axis=1,
        )  # (n, m): E_{o ~ target j} k_y(o_i, o)
        cross = cross * expected
        between = np.array(
            [
                [
                    p @ kernel_matrix(outputs.kernel, outputs.tau, rows, other_rows) @ q
                    for other_rows, q in outputs.target
                ]
                for rows, p in outputs.target
            ]
        )
        target_gram = target_gram * between
    return NaiveProblem(gram, cross @ w, float(w @ target_gram @ w))


def naive_greedy(
    problem: NaiveProblem,
    k: int,
    labels: Sequence[int] | np.ndarray | None = None,
    per_label: int | None = None,
) -> tuple[list[int], float]:
    """Greedy MMD: at each step the candidate whose addition gives the smallest ``MMD^2``
    (the first on ties), with ``labels`` at most ``per_label`` of each label. Returns the
    subset in selection order and the smallest gap, over the steps, between the best and the
    second best allowed candidate (a tie-free problem has a gap well above float32 rounding)."""
    chosen: list[int] = []
    gap = math.inf
    for step in range(1, k + 1):
        within = (
            problem.gram[np.ix_(chosen, chosen)].sum()
            + 2.0 * problem.gram[:, chosen].sum(1)
            + np.diagonal(problem.gram)
        )
        value = within / step**2 - 2.0 * (problem.affinity[chosen].sum() + problem.affinity) / step
        value[chosen] = math.inf
        if labels is not None and per_label is not None:
            label_of = np.asarray(labels)
            for label in set(label_of[chosen].tolist()):
                if (label_of[chosen] == label).sum() >= per_label:
                    value[label_of == label] = math.inf
        order = np.argsort(value, kind="stable")
        if np.isfinite(value[order[1]]):
            gap = min(gap, float(value[order[1]] - value[order[0]]))
        chosen.append(int(order[0]))
    return chosen, gap
